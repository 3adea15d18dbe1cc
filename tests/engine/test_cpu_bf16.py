"""The guard against oneDNN's garbage bf16 weight gradients for strided convolutions on 1-pixel inputs, and the
check for CPUs without oneDNN bf16 kernels."""

from __future__ import annotations

import copy
import logging

import pytest
import timm
import torch

from compressor.engine.cpu_bf16 import cpu_bf16_is_native, guard_one_pixel_convs
from compressor.engine.setup import resolve_precision
from compressor.export.env import cpu_flags


def _weight_grads(model: torch.nn.Module, x: torch.Tensor, autocast: bool) -> dict[str, torch.Tensor]:
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = model(x)
    y.double().square().mean().backward()
    return {n: p.grad.double().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("trial", range(8))  # unguarded, at least one of the 8 fails in ~98% of runs
def test_guarded_resnet_gets_the_float64_gradients_on_16px_images(trial: int) -> None:
    """resnet10t on 16 px: layer4's stride-2 3×3 conv sees a 1×1 map. Its bf16 weight gradient must match
    the float64 model's to bf16 accuracy: bf16 autocast puts every conv's weight gradient 15–25% (relative
    norm) off the float64 one here; unguarded, oneDNN returns NaN or 1e14+ on about half the calls."""
    torch.manual_seed(trial)
    model = timm.create_model("resnet10t", num_classes=0)
    with torch.no_grad():  # timm zero-initialises each block's last BN gain: no gradient would reach conv1
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
    ref = copy.deepcopy(model).double()
    assert guard_one_pixel_convs(model) > 0
    x = torch.randn(32, 3, 16, 16)
    got = _weight_grads(model, x, autocast=True)
    want = _weight_grads(ref, x.double(), autocast=False)
    for name in ("layer4.0.conv1.weight", "layer3.0.conv1.weight", "conv1.0.weight"):
        err = (got[name] - want[name]).norm() / want[name].norm()
        assert torch.isfinite(got[name]).all() and err < 0.5, (name, float(err))


def test_guard_keeps_the_module_and_leaves_larger_inputs_in_bf16() -> None:
    conv = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
    state = {k: v.clone() for k, v in conv.state_dict().items()}
    assert guard_one_pixel_convs(conv) == 1 and guard_one_pixel_convs(conv) == 0  # idempotent
    assert isinstance(conv, torch.nn.Conv2d) and type(conv).__name__ == "Conv2d"
    assert all(torch.equal(state[k], v) for k, v in conv.state_dict().items())
    assert guard_one_pixel_convs(torch.nn.Conv2d(8, 16, 1, stride=2)) == 0  # pointwise: not affected
    assert guard_one_pixel_convs(torch.nn.Conv2d(8, 16, 3, stride=1)) == 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(torch.randn(2, 8, 1, 1)).dtype == torch.float32  # the 1-pixel call ran in fp32
        assert conv(torch.randn(2, 8, 4, 4)).dtype == torch.bfloat16  # every other call as before
    copy.deepcopy(conv)  # EMA copies (mokd, seed) deep-copy guarded modules


def test_bf16_kernels_are_reported_as_the_cpu_flags_say() -> None:
    """Read independently of torch: an x86 CPU with native bf16 (AVX-512 BF16, AMX) has oneDNN's bf16 kernels, an
    AVX2-only one has none (where a two-step mokd run took 216 s in bf16 against 19 s in fp32)."""
    flags = set(cpu_flags())  # /proc/cpuinfo, read without torch
    if flags & {"avx512_bf16", "amx_bf16"}:
        assert cpu_bf16_is_native()
    elif "avx2" in flags and "avx512f" not in flags:
        assert not cpu_bf16_is_native()
    else:
        pytest.skip(f"no x86 flags that decide it here ({sorted(flags)[:5]}…)")


def test_bf16_on_a_cpu_without_bf16_kernels_is_warned_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="compressor"):
        assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
        assert resolve_precision("fp32", torch.device("cpu")) is None
    warned = [r.getMessage() for r in caplog.records if "bf16" in r.getMessage()]
    if cpu_bf16_is_native():
        assert warned == []
    else:
        assert len(warned) == 1 and "--precision fp32" in warned[0], warned
