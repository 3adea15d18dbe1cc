"""One export in progress (:class:`ExportJob`) and the steps several backends share: calibration images,
ORT's static INT8, the kNN report of an INT8 file, the parity verdict.

A backend (``export/backends/*.py``) gets an :class:`ExportJob` from ``exporter.py``: the fp32 student,
the work folder and file name, the options, the held-out check images and the threshold, the data to
calibrate on, and the trained QAD model when ``--qad-steps`` was given.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.errors import CompressorError
from compressor.export import images as img
from compressor.export.options import ExportOptions
from compressor.manifest import FidelityRecord
from compressor.models.encoder import Encoder

log = logging.getLogger("compressor")


@dataclass
class Qad:
    """A trained QAD model for one format, and what the manifest records of it (export/qad.py)."""

    encoder: Encoder
    record: dict


@dataclass
class ExportJob:
    encoder: Encoder  # the run's fp32 student: the reference of every check
    work: Path  # the export's temporary folder; the backend writes ``work / name`` there
    name: str  # the file name the format gets (``model.int8.qad.onnx``)
    opts: ExportOptions
    check: img.ImageBatch  # held-out images of the parity check
    threshold: float  # minimum mean cosine vs the fp32 student
    data: str  # the run's data SPEC (calibration, the kNN bank)
    root: str | None
    qad: Qad | None = None

    @property
    def path(self) -> Path:
        return self.work / self.name

    def graph_inputs(self, images: np.ndarray) -> np.ndarray:
        """``images`` as the graph takes them (uint8 NHWC with ``--bake-preprocess``)."""
        return img.to_uint8_nhwc(images, self.encoder.spec) if self.opts.bake_preprocess else images

    def reference(self) -> np.ndarray:
        from compressor.export.parity import torch_embeddings

        return torch_embeddings(self.encoder, self.check.images)

    def fp32_onnx(self, path: Path) -> dict:
        """The student as fp32 ONNX at ``path``; returns the facts (opset, input, output) for the manifest."""
        from compressor.export.onnx import export_onnx

        return export_onnx(self.encoder, path, opset=self.opts.opset, bake_preprocess=self.opts.bake_preprocess)

    def qad_onnx(self, path: Path) -> tuple[dict, dict]:
        """The trained QAD graph at ``path`` (its format's scheme); returns (facts, the manifest's QAD blocks)."""
        from compressor.export.qad import SCHEMES, write_onnx

        assert self.qad is not None
        fmt = self.opts.format
        facts = write_onnx(self.qad.encoder, fmt, path, opset=self.opts.opset,
                           bake_preprocess=self.opts.bake_preprocess)
        s, rec = SCHEMES[fmt], self.qad.record
        quantization = {"format": "QDQ" if s.onnx_mode == "qdq" else "FakeQuantize", "method": "qad",
                        "activations": s.activations, "weights": s.weights, "tool": f"nncf {rec['version']}",
                        "calib_data": rec.get("calib_data"), "calib_images": rec.get("range_init_images")}
        return facts, {"quantization": quantization, "qad": rec}

    def calibration_images(self) -> img.ImageBatch:
        return calibration_images(self.encoder, self.opts, self.data, self.root)

    def quantize(self, fp32: Path, dst: Path, *, for_tensorrt: bool = False) -> dict:
        """ORT's static INT8 of ``fp32`` into ``dst`` (export/quantize.py); returns the ``quantization`` block."""
        from compressor.export.quantize import quantize_int8, resolve_reduce_range

        opts = self.opts
        calib = self.calibration_images()
        q = quantize_int8(fp32, dst, self.graph_inputs(calib.images), method=opts.calib_method,
                          exclude=opts.int8_exclude, for_tensorrt=for_tensorrt,
                          reduce_range=resolve_reduce_range(opts.reduce_range, for_tensorrt=for_tensorrt))
        return {"quantization": {**q, "calib_data": calib.source, "calib_sample": calib.sample}}

    def knn_report(self, run_int8: Callable[[np.ndarray], np.ndarray], ref_q: np.ndarray,
                   int8_q: np.ndarray) -> dict:
        """kNN top-1 of fp32 vs int8 embeddings: bank = training images, queries = the held-out check images.

        The two are scored on the same queries, so their difference is a paired one: only the queries one
        precision gets right and the other wrong (``knn_discordant``) move it. ``knn_delta_noise`` is the
        half-width within which that difference stays ~95% of the time when int8 changes nothing (McNemar's
        normal approximation, ``2·sqrt(b + c) / n``): a delta inside it is noise of the small check, not a
        gain or a loss of quantisation.
        """
        import torch

        from compressor.eval.knn import knn_predict
        from compressor.export.parity import torch_embeddings

        check, encoder = self.check, self.encoder
        if check.labels is None:
            return {}
        bank = img.load_images(self.data, encoder.spec, self.opts.calib_size, split="train", root=self.root)
        if bank.labels is None:
            return {}
        bank_fp32 = torch_embeddings(encoder, bank.images)
        bank_int8 = run_int8(self.graph_inputs(bank.images))
        yb, yq = torch.from_numpy(bank.labels), torch.from_numpy(check.labels)
        classes = int(max(yb.max(), yq.max())) + 1
        right = {p: knn_predict(torch.from_numpy(b), yb, torch.from_numpy(q), num_classes=classes) == yq
                 for p, b, q in (("fp32", bank_fp32, ref_q), ("int8", bank_int8, int8_q))}
        n = len(yq)
        fp32_only = int((right["fp32"] & ~right["int8"]).sum())
        int8_only = int((right["int8"] & ~right["fp32"]).sum())
        return {"knn_top1_fp32": float(right["fp32"].float().mean()),
                "knn_top1_int8": float(right["int8"].float().mean()),
                "knn_discordant": {"fp32_only": fp32_only, "int8_only": int8_only},
                "knn_delta_noise": 2 * math.sqrt(fp32_only + int8_only) / n, "knn_bank": len(bank),
                "knn_queries": n, "knn": "weighted cosine kNN, k=20, T=0.07", "knn_bank_sample": bank.sample}

    def verdict(self, reference: np.ndarray, output: np.ndarray, *, what: str = "export",
                note: str = "") -> tuple[FidelityRecord, float]:
        """The parity figures of ``output`` (the file's embeddings) against ``reference``; raises the one-line
        refusal (file not kept) below the threshold. Returns (``fidelity`` block, mean cosine)."""
        from compressor.export.parity import compare

        fid = compare(reference, output, data=self.check.source)
        fidelity: FidelityRecord = {**fid.to_dict(), "threshold": self.threshold, "sample": self.check.sample}
        if not fid.mean_cosine >= self.threshold:  # NaN fails too
            fix = int8_hint(self.opts) if self.opts.format.endswith("int8") else (
                "; try --strict-fp32" if self.opts.format == "openvino" else
                "; report the architecture, this is a bug in the export")
            raise CompressorError(f"{self.opts.format} {what} failed its parity check and was not kept: "
                                  f"{fid.describe()}, below the threshold {self.threshold}{note}{fix}")
        return fidelity, fid.mean_cosine


def int8_hint(opts: ExportOptions) -> str:
    if opts.qad_steps is not None:
        return (f"; QAD trained {opts.qad_steps} steps: try more --qad-steps, another --qad-lr, more --calib-size, "
                "or lower --min-cosine")
    return ("; try --qad-steps 300 (quantization-aware distillation), --calib-method percentile or entropy, "
            "more --calib-size, --int8-exclude NODE for a sensitive layer, or lower --min-cosine")


def calibration_images(encoder: Encoder, opts: ExportOptions, data: str, root: str | None) -> img.ImageBatch:
    """The INT8 calibration set: a class-stratified random sample of ``--calib-data`` (default the run's)."""
    calib_spec = opts.calib_data or data
    calib_root = root if opts.calib_data is None else opts.data_root
    calib = img.load_images(calib_spec, encoder.spec, opts.calib_size, split="train", root=calib_root)
    if len(calib) < opts.calib_size:
        log.warning("only %d calibration images in %s (asked for %d)", len(calib), calib.source,
                    opts.calib_size)
    log.info("calibrating INT8 (%s) on %d images of %s", opts.calib_method, len(calib), calib.source)
    return calib
