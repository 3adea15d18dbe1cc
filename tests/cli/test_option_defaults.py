"""`compress export` and `compress bench` show and use the library's defaults (ExportOptions, BenchOptions)."""

import dataclasses
import inspect

import pytest

from compressor.cli.bench import bench_cmd
from compressor.cli.export import export_cmd
from compressor.cli.util import parse_ints
from compressor.export.options import BenchOptions, ExportOptions

# flag parameter -> (options field, how the CLI turns the flag's text into the field's value)
EXPORT = {"format": ("format", None), "out_dir": ("out_dir", None), "opset": ("opset", None),
          "bake_preprocess": ("bake_preprocess", None), "calib_data": ("calib_data", None),
          "calib_size": ("calib_size", None), "calib_method": ("calib_method", None),
          "min_cosine": ("min_cosine", None), "check_size": ("check_size", None), "knn": ("knn", None),
          "int8_exclude": ("int8_exclude", lambda v: tuple(v or ())), "reduce_range": ("reduce_range", None),
          "trt_batch": ("trt_batch", lambda v: parse_ints(v, "--trt-batch")), "data": ("data", None),
          "data_root": ("data_root", None), "strict_fp32": ("strict_fp32", None),
          "qad_steps": ("qad_steps", None), "qad_lr": ("qad_lr", None), "qad_batch_size": ("qad_batch_size", None)}
BENCH = {"backend": ("backends", lambda v: tuple(v.split(","))), "batch": ("batches", lambda v: parse_ints(v, "-")),
         "threads": ("threads", None), "warmup": ("warmup", None), "iters": ("iters", None),
         "seconds": ("seconds", None), "compile": ("compile", None), "torch_device": ("torch_device", None),
         "data": ("data", None), "data_root": ("data_root", None), "cv_warn": ("cv_warn", None),
         "warmup_s": ("warmup_s", None), "mode": ("mode", None), "streams": ("streams", None)}


@pytest.mark.parametrize(("command", "options", "mapping"), [(export_cmd, ExportOptions, EXPORT),
                                                             (bench_cmd, BenchOptions, BENCH)])
def test_every_flag_defaults_to_the_library_default(command, options, mapping) -> None:
    params = inspect.signature(command).parameters
    defaults = options()
    for flag, (name, convert) in mapping.items():
        value = params[flag].default
        assert (convert(value) if convert else value) == getattr(defaults, name), flag
    # every option field but the library-only ones has a flag
    covered = {name for name, _ in mapping.values()} | {"progress"}
    assert {f.name for f in dataclasses.fields(options)} <= covered
