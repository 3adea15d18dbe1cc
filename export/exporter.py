"""``export_run``: a run's student → one deployable file in ``RUN/export/``, checked, with its manifest entry.

Every format is checked against the PyTorch fp32 student on real images from the run's data before
it is kept; a file that fails its threshold is deleted and the error carries the figures.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compressor.errors import CompressorError
from compressor.export import images as img
from compressor.export.backend import formats, get_format
from compressor.export.env import tool_versions
from compressor.export.job import ExportJob, Qad, calibration_images
from compressor.export.options import REDUCE_RANGE, ExportOptions, check_export_options
from compressor.export.quantize import CALIB_METHODS
from compressor.manifest import ExportEntry, record_export
from compressor.models.encoder import Encoder
from compressor.registry import unknown_name_message
from compressor.rundir import RunDir
from compressor.runlock import FolderLock
from compressor.utils.io import file_record, remove_orphaned_temps

log = logging.getLogger("compressor")

EXPORT_TMP_PREFIX = ".export-"  # the work folder of one export; kill -9 leaves it behind


class _FormatTable(Mapping[str, tuple[str, str, float]]):
    """``FORMATS[name] -> (file stem, precision, default minimum cosine)``, read from the backend registry
    (export/backend.py) at each lookup: the spelling of the public table before the registry existed."""

    def __getitem__(self, name: str) -> tuple[str, str, float]:
        f, _ = get_format(name)
        return f.stem, f.precision, f.min_cosine

    def __iter__(self) -> Iterator[str]:
        return iter(formats())

    def __len__(self) -> int:
        return len(formats())


FORMATS: Mapping[str, tuple[str, str, float]] = _FormatTable()


@dataclass
class ExportResult:
    path: Path
    entry: ExportEntry
    manifest: Path


def file_name(fmt: str, *, baked: bool, qad: bool = False) -> str:
    f, backend = get_format(fmt)
    return f.stem + (".qad" if qad else "") + (".rgb8" if baked else "") + backend.suffixes[0]


def check_options(opts: ExportOptions) -> None:
    """Everything about ``opts`` that can be refused before a file is written: the numbers' ranges (whatever
    the format), the format, the calibration method, and the runtime the format needs."""
    check_export_options(opts)
    if opts.format == "timm" and opts.qad_steps is None:
        return
    # an unknown name fails here with suggestions; an alias (`trt`) is checked as its format (trt-fp16)
    name = opts.format if opts.format == "timm" else get_format(opts.format)[0].name
    if opts.qad_steps is not None:
        from compressor.export.qad import check_qad

        check_qad(name)  # an INT8 format, and NNCF installed: before anything is trained
    if opts.calib_method not in CALIB_METHODS:
        raise CompressorError(unknown_name_message("calibration method", opts.calib_method, list(CALIB_METHODS)))
    if opts.reduce_range not in REDUCE_RANGE:
        raise CompressorError(unknown_name_message("--reduce-range value", opts.reduce_range, list(REDUCE_RANGE)))
    _, backend = get_format(name)
    if (reason := backend.unavailable(name)) is not None:  # at once, not after the ONNX and INT8 steps
        raise CompressorError(reason)


def export_run(run_dir: str | Path, options: ExportOptions | None = None) -> ExportResult:
    """Export the student of ``run_dir`` as ``options.format``; see :class:`ExportOptions`."""
    from compressor.models.saved import load_encoder

    opts = options or ExportOptions()
    check_options(opts)
    if opts.format != "timm":  # an alias (`trt`) becomes its format's own name: the file and manifest say trt-fp16
        opts = replace(opts, format=get_format(opts.format)[0].name)
    run_dir = Path(run_dir)
    out_dir = Path(opts.out_dir) if opts.out_dir else RunDir(run_dir).export_dir
    if not RunDir(run_dir).is_finished():
        load_encoder(run_dir)  # its one-line error for a folder that is not a finished run, before export/ is made
    # One writer of the export folder at a time, and none while `compress bench` reads it (compressor/runlock.py).
    with FolderLock(out_dir, "export"):
        for p in remove_orphaned_temps(out_dir, also_dirs=EXPORT_TMP_PREFIX):
            log.info("removed %s, left by an interrupted export", p)
        if opts.format == "timm":  # a folder for timm / the hub, not a graph: see export/timm_format.py
            from compressor.export.timm_format import export_timm

            return ExportResult(*export_timm(run_dir, opts.out_dir))
        return _export_locked(run_dir, out_dir, opts)


def _export_locked(run_dir: Path, out_dir: Path, opts: ExportOptions) -> ExportResult:
    from compressor.models.saved import load_encoder, read_encoder_meta

    fmt, backend = get_format(opts.format)
    encoder = load_encoder(run_dir)
    threshold = opts.min_cosine if opts.min_cosine is not None else fmt.min_cosine
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
    qad = _train_qad(encoder, run_dir, opts, data, root) if opts.qad_steps is not None else None
    name = file_name(opts.format, baked=opts.bake_preprocess, qad=qad is not None)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix=EXPORT_TMP_PREFIX, dir=out_dir) as tmp:
        work = Path(tmp)
        facts = backend.export(ExportJob(encoder, work, name, opts, check, threshold, data, root, qad))
        # Only a file that passed its check reaches out_dir; the rename is atomic on one filesystem.
        for side in backend.sidecars(name):
            (work / side).replace(out_dir / side)
        (work / name).replace(out_dir / name)
        backend.finish(work, out_dir)
    size = (out_dir / name).stat().st_size
    written = [out_dir / name, *(out_dir / side for side in backend.sidecars(name))]
    entry: ExportEntry = {"file": name, "format": opts.format, "precision": fmt.precision,
             "size_bytes": size, "size_mb": round(size / 1e6, 3),
             "files": {f.name: file_record(f) for f in written}, **facts,
             "export_seconds": round(time.time() - started, 1),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tools": tool_versions()}
    manifest = record_export(out_dir, name, entry, student=read_encoder_meta(run_dir))
    return ExportResult(out_dir / name, entry, manifest)


def _train_qad(encoder: Encoder, run_dir: Path, opts: ExportOptions, data: str, root: str | None) -> Qad:
    """QAD for ``opts.format`` (export/qad.py): quantizer ranges set on the calibration images, then
    ``--qad-steps`` steps toward the fp32 student, resumable from ``RUN/qad/<scheme>.pt``."""
    from compressor.export import qad

    assert opts.qad_steps is not None
    config = qad.QadConfig(steps=opts.qad_steps, lr=opts.qad_lr, batch_size=opts.qad_batch_size)
    calib = calibration_images(encoder, opts, data, root)
    pool = qad.training_pool(encoder, data, root, config)
    log.info("QAD for %s: %d steps of batch %d on %d training images of %s (NNCF fake quantization, target: "
             "the fp32 student)", opts.format, config.steps, config.batch_size, len(pool), data)
    checkpoint = run_dir / qad.QAD_DIR / f"{qad.SCHEMES[opts.format].name}.pt"  # shared by formats of one scheme
    qenc, record = qad.train_qad(encoder, opts.format, calib.images, pool, config, checkpoint=checkpoint,
                                 source=str(run_dir),
                                 source_digest=file_record(RunDir(run_dir).weights_path())["sha256"])
    record.update(calib_data=calib.source, calib_sample=calib.sample)
    return Qad(qenc, record)


def export_file(run: str | Path, format: str = "onnx", **options: Any) -> Path:
    """``export_run`` with the options as keywords (``compressor.export(...)``, ``compressor.api.export``)."""
    from compressor.utils.coerce import unknown_fields

    unknown_fields("export", options, ExportOptions)
    return export_run(run, ExportOptions(format=format, **options)).path
