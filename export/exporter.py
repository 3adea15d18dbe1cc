"""``export_run``: a run's student → one deployable file in ``RUN/export/``, checked, with its manifest entry.

Every format is checked against the PyTorch fp32 student on real images from the run's data before
it is kept; a file that fails its threshold is deleted and the error carries the figures.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressor.engine.runlock import FolderLock
from compressor.errors import CompressorError
from compressor.export import images as img
from compressor.export.env import tool_versions
from compressor.export.options import REDUCE_RANGE, ExportOptions, check_export_options
from compressor.export.quantize import CALIB_METHODS
from compressor.manifest import record_export
from compressor.models.encoder import Encoder
from compressor.registry import unknown_name_message
from compressor.rundir import RunDir
from compressor.utils.io import file_record, remove_orphaned_temps

log = logging.getLogger("compressor")

# format -> (file stem, precision, default minimum mean cosine vs the PyTorch fp32 student)
FORMATS: dict[str, tuple[str, str, float]] = {
    "onnx": ("model", "fp32", 0.9999),
    "onnx-fp16": ("model.fp16", "fp16", 0.999),
    "onnx-int8": ("model.int8", "int8", 0.98),
    "trt-fp16": ("model.fp16", "fp16", 0.999),
    "trt-int8": ("model.int8", "int8", 0.98),
    # the CPU plugin runs an fp32 IR in bf16 where the CPU has it: fp16-like threshold, 0.9999 with strict_fp32
    "openvino": ("model", "fp32", 0.999),
    "openvino-int8": ("model.int8", "int8", 0.98),
}
EXPORT_TMP_PREFIX = ".export-"  # the work folder of one export; kill -9 leaves it behind
SUFFIX = {"trt": ".engine", "openvino": ".xml"}  # by format family; everything else is .onnx


@dataclass
class ExportResult:
    path: Path
    entry: dict
    manifest: Path


def file_name(fmt: str, *, baked: bool) -> str:
    stem = FORMATS[fmt][0] + (".rgb8" if baked else "")
    return stem + SUFFIX.get(fmt.split("-")[0], ".onnx")


def check_options(opts: ExportOptions) -> None:
    """Everything about ``opts`` that can be refused before a file is written: the numbers' ranges (whatever
    the format), the format, the calibration method, and the runtime the format needs."""
    check_export_options(opts)
    if opts.format == "timm":
        return
    if opts.format not in FORMATS:
        raise CompressorError(unknown_name_message("export format", opts.format, [*FORMATS, "timm"]))
    if opts.calib_method not in CALIB_METHODS:
        raise CompressorError(unknown_name_message("calibration method", opts.calib_method, list(CALIB_METHODS)))
    if opts.reduce_range not in REDUCE_RANGE:
        raise CompressorError(unknown_name_message("--reduce-range value", opts.reduce_range, list(REDUCE_RANGE)))
    if opts.format.startswith("trt"):
        from compressor.export.tensorrt import import_tensorrt

        import_tensorrt()  # fail at once, not after the ONNX and INT8 steps, when TensorRT is missing
    if opts.format.startswith("openvino"):
        from compressor.export.openvino import openvino_unavailable

        if (reason := openvino_unavailable(nncf=opts.format == "openvino-int8")) is not None:
            raise CompressorError(reason)


def export_run(run_dir: str | Path, options: ExportOptions | None = None) -> ExportResult:
    """Export the student of ``run_dir`` as ``options.format``; see :class:`ExportOptions`."""
    from compressor.models.saved import load_encoder

    opts = options or ExportOptions()
    check_options(opts)
    run_dir = Path(run_dir)
    out_dir = Path(opts.out_dir) if opts.out_dir else RunDir(run_dir).export_dir
    if not RunDir(run_dir).is_finished():
        load_encoder(run_dir)  # its one-line error for a folder that is not a finished run, before export/ is made
    # One writer of the export folder at a time, and none while `compress bench` reads it (engine/runlock.py).
    with FolderLock(out_dir, "export"):
        for p in remove_orphaned_temps(out_dir, also_dirs=EXPORT_TMP_PREFIX):
            log.info("removed %s, left by an interrupted export", p)
        if opts.format == "timm":  # a folder for timm / the hub, not a graph: see export/timm_format.py
            from compressor.export.timm_format import export_timm

            return ExportResult(*export_timm(run_dir, opts.out_dir))
        return _export_locked(run_dir, out_dir, opts)


def _export_locked(run_dir: Path, out_dir: Path, opts: ExportOptions) -> ExportResult:
    from compressor.models.saved import load_encoder, read_encoder_meta

    encoder = load_encoder(run_dir)
    threshold = opts.min_cosine if opts.min_cosine is not None else FORMATS[opts.format][2]
    if opts.min_cosine is None and opts.format == "openvino" and opts.strict_fp32:
        threshold = FORMATS["onnx"][2]
    data, root = opts.data, opts.data_root
    if data is None:
        data, run_root = img.run_data(run_dir)
        root = root or run_root
    if data is None:
        raise CompressorError(f"{run_dir} has no config.yaml naming its data; pass --data SPEC for the "
                              "parity check")
    check = img.load_images(data, encoder.spec, opts.check_size, split="val", root=root)
    name = file_name(opts.format, baked=opts.bake_preprocess)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix=EXPORT_TMP_PREFIX, dir=out_dir) as tmp:
        work = Path(tmp)
        if opts.format.startswith("trt"):
            entry = _export_trt(encoder, work, name, opts, check, threshold, data, root)
        elif opts.format.startswith("openvino"):
            entry = _export_openvino(encoder, work, name, opts, check, threshold, data, root)
            (work / name).with_suffix(".bin").replace((out_dir / name).with_suffix(".bin"))
        else:
            entry = _export_onnx_family(encoder, work, name, opts, check, threshold, data, root)
        # Only a file that passed its check reaches out_dir; the rename is atomic on one filesystem.
        (work / name).replace(out_dir / name)
        if (work / "timing.cache").is_file():
            shutil.copyfile(work / "timing.cache", out_dir / "timing.cache")
    size = (out_dir / name).stat().st_size
    written = [out_dir / name, *([(out_dir / name).with_suffix(".bin")] if name.endswith(".xml") else [])]
    entry = {"file": name, "format": opts.format, "precision": FORMATS[opts.format][1],
             "size_bytes": size, "size_mb": round(size / 1e6, 3),
             "files": {f.name: file_record(f) for f in written}, **entry,
             "export_seconds": round(time.time() - started, 1),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tools": tool_versions()}
    manifest = record_export(out_dir, name, entry, student=read_encoder_meta(run_dir))
    return ExportResult(out_dir / name, entry, manifest)


def _graph_inputs(encoder: Encoder, images: np.ndarray, baked: bool) -> np.ndarray:
    return img.to_uint8_nhwc(images, encoder.spec) if baked else images


def _export_onnx_family(encoder: Encoder, work: Path, name: str, opts: ExportOptions, check: img.ImageBatch,
                        threshold: float, data: str, root: str | None) -> dict:
    from compressor.export.metadata import contract, write_onnx_metadata
    from compressor.export.onnx import convert_fp16, export_onnx
    from compressor.export.parity import compare, torch_embeddings
    from compressor.export.runtime import make_session, run_batched

    fp32 = work / "fp32.onnx"
    facts = export_onnx(encoder, fp32, opset=opts.opset, bake_preprocess=opts.bake_preprocess)
    reference = torch_embeddings(encoder, check.images)
    inputs = _graph_inputs(encoder, check.images, opts.bake_preprocess)
    extra: dict = {}
    if opts.format == "onnx":
        fp32.rename(work / name)
    elif opts.format == "onnx-fp16":
        convert_fp16(fp32, work / name)
    else:
        extra = _quantize(encoder, fp32, work / name, opts, data, root)
    write_onnx_metadata(work / name, contract(facts["input"], embed_dim=encoder.embed_dim, arch=encoder.arch,
                                              fmt=opts.format, precision=FORMATS[opts.format][1],
                                              opset=opts.opset))
    output = run_batched(make_session(work / name), inputs)
    fid = compare(reference, output, data=check.source)
    fidelity = {**fid.to_dict(), "threshold": threshold, "sample": check.sample}
    if opts.format == "onnx-int8" and opts.knn:
        session = make_session(work / name)
        fidelity.update(_knn_report(encoder, lambda x: run_batched(session, x), opts, check, reference, output,
                                    data, root))
    if not fid.mean_cosine >= threshold:  # NaN fails too
        raise CompressorError(
            f"{opts.format} export failed its parity check and was not kept: {fid.describe()}, below the "
            f"threshold {threshold}" + (_int8_hint() if opts.format == "onnx-int8" else
                                        "; report the architecture, this is a bug in the export"))
    return {**facts, "fidelity": fidelity, **extra}


def _int8_hint() -> str:
    return ("; try --calib-method percentile or entropy, more --calib-size, --int8-exclude NODE for a "
            "sensitive layer, or lower --min-cosine")


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


def _quantize(encoder: Encoder, fp32: Path, dst: Path, opts: ExportOptions, data: str,
              root: str | None, *, for_tensorrt: bool = False) -> dict:
    from compressor.export.quantize import quantize_int8, resolve_reduce_range

    calib = calibration_images(encoder, opts, data, root)
    q = quantize_int8(fp32, dst, _graph_inputs(encoder, calib.images, opts.bake_preprocess),
                      method=opts.calib_method, exclude=opts.int8_exclude, for_tensorrt=for_tensorrt,
                      reduce_range=resolve_reduce_range(opts.reduce_range, for_tensorrt=for_tensorrt))
    return {"quantization": {**q, "calib_data": calib.source, "calib_sample": calib.sample}}


def _knn_report(encoder: Encoder, run_int8: Callable[[np.ndarray], np.ndarray], opts: ExportOptions,
                check: img.ImageBatch, ref_q: np.ndarray, int8_q: np.ndarray, data: str, root: str | None) -> dict:
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

    if check.labels is None:
        return {}
    bank = img.load_images(data, encoder.spec, opts.calib_size, split="train", root=root)
    if bank.labels is None:
        return {}
    bank_fp32 = torch_embeddings(encoder, bank.images)
    bank_int8 = run_int8(_graph_inputs(encoder, bank.images, opts.bake_preprocess))
    yb, yq = torch.from_numpy(bank.labels), torch.from_numpy(check.labels)
    classes = int(max(yb.max(), yq.max())) + 1
    right = {p: knn_predict(torch.from_numpy(b), yb, torch.from_numpy(q), num_classes=classes) == yq
             for p, b, q in (("fp32", bank_fp32, ref_q), ("int8", bank_int8, int8_q))}
    n = len(yq)
    fp32_only, int8_only = int((right["fp32"] & ~right["int8"]).sum()), int((right["int8"] & ~right["fp32"]).sum())
    return {"knn_top1_fp32": float(right["fp32"].float().mean()), "knn_top1_int8": float(right["int8"].float().mean()),
            "knn_discordant": {"fp32_only": fp32_only, "int8_only": int8_only},
            "knn_delta_noise": 2 * math.sqrt(fp32_only + int8_only) / n, "knn_bank": len(bank),
            "knn_queries": n, "knn": "weighted cosine kNN, k=20, T=0.07", "knn_bank_sample": bank.sample}


def _export_trt(encoder: Encoder, work: Path, name: str, opts: ExportOptions, check: img.ImageBatch,
                threshold: float, data: str, root: str | None) -> dict:
    """Build the ONNX it needs (fp32 for trt-fp16, the calibrated QDQ graph for trt-int8), then the engine."""
    from compressor.export import tensorrt as trt
    from compressor.export.onnx import export_onnx
    from compressor.export.parity import compare, torch_embeddings

    fp32 = work / "fp32.onnx"
    facts = export_onnx(encoder, fp32, opset=opts.opset, bake_preprocess=opts.bake_preprocess)
    source, extra = fp32, {}
    if opts.format == "trt-int8":
        source = work / "qdq.onnx"
        extra = _quantize(encoder, fp32, source, opts, data, root, for_tensorrt=True)
    inputs = _graph_inputs(encoder, check.images, opts.bake_preprocess)
    block = trt.build_engine(source, work / name, precision=FORMATS[opts.format][1],
                             image_shape=inputs.shape[1:], batch=opts.trt_batch,
                             timing_cache=work / "timing.cache")
    runner = trt.TrtRunner(trt.load_engine(work / name, None))
    outs = []
    for i in range(0, len(inputs), opts.trt_batch[2]):
        outs.append(runner.prepare(inputs[i:i + opts.trt_batch[2]])().cpu().numpy())
    fid = compare(torch_embeddings(encoder, check.images), np.concatenate(outs), data=check.source)
    fid_dict = {**fid.to_dict(), "threshold": threshold, "sample": check.sample}
    if not fid.mean_cosine >= threshold:  # NaN fails too
        raise CompressorError(f"{opts.format} engine failed its parity check and was not kept: "
                              f"{fid.describe()}, below the threshold {threshold}")
    return {**facts, "tensorrt": block, "fidelity": fid_dict, **extra}


def _export_openvino(encoder: Encoder, work: Path, name: str, opts: ExportOptions, check: img.ImageBatch,
                     threshold: float, data: str, root: str | None) -> dict:
    """fp32 ONNX → OpenVINO IR (NNCF-quantised for ``openvino-int8``), compiled and checked like ONNX."""
    from compressor.export import openvino as ovx
    from compressor.export.metadata import contract
    from compressor.export.onnx import export_onnx
    from compressor.export.parity import compare, torch_embeddings

    fp32 = work / "fp32.onnx"
    facts = export_onnx(encoder, fp32, opset=opts.opset, bake_preprocess=opts.bake_preprocess)
    props = contract(facts["input"], embed_dim=encoder.embed_dim, arch=encoder.arch, fmt=opts.format,
                     precision=FORMATS[opts.format][1], opset=opts.opset)
    extra: dict = {}
    calib_inputs = None
    if opts.format == "openvino-int8":
        calib = calibration_images(encoder, opts, data, root)
        calib_inputs = _graph_inputs(encoder, calib.images, opts.bake_preprocess)
        extra = {"quantization": {"calib_data": calib.source, "calib_sample": calib.sample,
                                  "calib_images": len(calib)}}
    block = ovx.convert(fp32, work / name, props, strict_fp32=opts.strict_fp32, calib=calib_inputs)
    if "quantization" in block:
        extra["quantization"].update(block.pop("quantization"))
    runner = ovx.OpenVinoRunner(work / name, strict_fp32=opts.strict_fp32)
    block["inference_precision"] = runner.inference_precision
    reference = torch_embeddings(encoder, check.images)
    output = runner.run(_graph_inputs(encoder, check.images, opts.bake_preprocess))
    fid = compare(reference, output, data=check.source)
    fidelity = {**fid.to_dict(), "threshold": threshold, "sample": check.sample}
    if opts.format == "openvino-int8" and opts.knn:
        fidelity.update(_knn_report(encoder, runner.run, opts, check, reference, output, data, root))
    if not fid.mean_cosine >= threshold:  # NaN fails too
        raise CompressorError(
            f"{opts.format} export failed its parity check and was not kept: {fid.describe()}, below the "
            f"threshold {threshold} (inference precision {runner.inference_precision})"
            + (_int8_hint() if opts.format.endswith("int8") else "; try --strict-fp32"))
    return {**facts, "openvino": block, "fidelity": fidelity, **extra}


def export_file(run: str | Path, format: str = "onnx", **options: Any) -> Path:
    """``export_run`` with the options as keywords (``compressor.export(...)``, ``compressor.api.export``)."""
    from compressor.utils.coerce import unknown_fields

    unknown_fields("export", options, ExportOptions)
    return export_run(run, ExportOptions(format=format, **options)).path
