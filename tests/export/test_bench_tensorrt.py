"""TensorRT without TensorRT: the ``trt`` format alias (issue 38) and the engine runner's buffer ownership.

TensorRT cannot be installed here; what can be checked on CPU is checked through the public registry and the
runner's pure-PyTorch seam (:class:`EngineBuffers`). The engine itself runs in tests/gpu/test_bench_cuda.py.
"""

from __future__ import annotations

import ctypes
import gc
from pathlib import Path

import numpy as np
import pytest
import torch

from compressor.errors import CompressorError
from compressor.export.backend import format_aliases, formats, get_format
from compressor.export.exporter import check_options, file_name
from compressor.export.options import ExportOptions
from compressor.export.tensorrt import EngineBuffers, trt_unavailable

REASON = trt_unavailable()


def test_trt_is_the_fp16_engine_through_the_public_lookup() -> None:
    fmt, backend = get_format("trt")
    assert (fmt.name, fmt.precision, backend.name) == ("trt-fp16", "fp16", "tensorrt")
    assert fmt is get_format("trt-fp16")[0]  # the same declaration, not a copy
    assert format_aliases() == {"trt": "trt-fp16"}
    assert "trt" not in formats()  # listed once, under its own name (pick, list, the registry tests)
    assert file_name("trt", baked=False) == file_name("trt-fp16", baked=False) == "model.fp16.engine"
    with pytest.raises(CompressorError, match=r"unknown export format 'trtx'; did you mean .*trt"):
        get_format("trtx")


def test_export_help_says_what_trt_means(cli) -> None:
    code, out, _ = cli("export", "--help")
    assert code == 0
    text = " ".join(out.split())
    for alias, name in format_aliases().items():
        assert f"{alias} means {name}" in text, text


@pytest.mark.skipif(REASON is None, reason="TensorRT is available here: the export would run")
def test_trt_without_tensorrt_names_the_package_not_an_unknown_format(fresh_run: Path, cli) -> None:
    with pytest.raises(CompressorError) as err:
        check_options(ExportOptions(format="trt"))
    assert str(err.value) == REASON and "unknown" not in str(err.value)
    code, _, stderr = cli("export", fresh_run, "--format", "trt", "--check-size", "4")
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert "pip install tensorrt" in stderr or "CUDA" in stderr  # the package, or (with it) the missing GPU
    assert "unknown export format" not in stderr
    assert not (fresh_run / "export" / "model.fp16.engine").exists()


def _read_floats(address: int, n: int) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_float * n).from_address(address)).copy()


def test_engine_buffers_own_every_address_they_bind() -> None:
    """The lifetime bug of issue 38: the engine kept the address of a tensor that ``prepare`` then dropped. Every
    address handed to ``bind`` (the context's set_tensor_address) must be the memory of a tensor the buffers
    keep, still holding the batch after the caller's references are gone and the allocator has been busy."""
    bound: dict[str, int] = {}
    buf = EngineBuffers("images", "embeddings", device="cpu", input_dtype=torch.float32,
                        output_dtype=torch.float32)
    batch = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    assert buf.fit(batch.shape, (4, 16), bound.__setitem__)
    buf.input[:4].copy_(torch.from_numpy(batch))
    del batch  # the caller's copy is gone; only the buffers hold the data now
    kept = buf.input[:4].numpy().copy()
    gc.collect()
    churn = [torch.randn(4, 3, 8, 8) for _ in range(32)]  # reuse any memory freed above
    assert set(bound) == {"images", "embeddings"}
    for name, address in bound.items():
        owner = buf.owner(address)
        assert owner is not None, f"{name} is bound to memory no tensor of the buffers holds"
        assert owner.data_ptr() == address == buf.bound[name]
    np.testing.assert_array_equal(_read_floats(bound["images"], kept.size).reshape(kept.shape), kept)
    del churn

    # A smaller batch uses the first rows of the same memory: nothing rebound, nothing freed.
    assert not buf.fit((2, 3, 8, 8), (2, 16), bound.__setitem__)
    assert buf.owner(bound["images"]) is buf.input
    # A larger one replaces the tensors and binds the new addresses; the old ones are no longer bound.
    old = dict(bound)
    assert buf.fit((8, 3, 8, 8), (8, 16), bound.__setitem__)
    assert buf.input.shape[0] == 8 and buf.host_output.shape == (8, 16)
    assert all(buf.owner(a) is not None for a in bound.values())
    assert bound["images"] != old["images"] or buf.owner(old["images"]) is buf.input
    # another image size is a different shape, not room: rebound too
    assert buf.fit((8, 3, 16, 16), (8, 16), bound.__setitem__)
    assert buf.owner(bound["images"]) is buf.input and tuple(buf.input.shape) == (8, 3, 16, 16)

