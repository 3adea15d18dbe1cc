"""A guard for a oneDNN bug: bf16 convolution weight gradients on CPU are garbage for 1-pixel inputs.

With ``torch==2.14.1`` on CPU (oneDNN), a strided convolution with a kernel larger than 1 whose input
is one pixel high or wide — ``Conv2d(C, C', 3, stride=2, padding=1)`` on an ``N×C×1×1`` map, which is
what a ResNet's last stage gets from a 16–32 px image — computes its *weight* gradient under bf16
autocast from memory it never wrote: measured here (AMD EPYC Zen 4), 2 to 5 of 6 backward passes
gave NaN, infinities or values of 1e14–1e28, the rest the right numbers. The forward pass and the
input gradient are right; fp32, and bf16 with oneDNN switched off, are right. The trainer's
finiteness checks stop a run on the NaN cases, but a finite 1e15 gradient is clipped to the
clipping norm and silently becomes a random update. Small-image CNN training with ``--precision
bf16`` on CPU hits it (MOKD's 16 px local crops with resnet10t: garbage at step 1).

The guard runs exactly those convolutions in fp32 (autocast off, input cast to float32) when their
input has a spatial size of 1 under CPU autocast; every other call is untouched. They are the
cheapest convolutions of the network (one output pixel), so the cost is negligible. Nothing else
changes: the module keeps its class's name, parameters and state dict (its class becomes a subclass
of the one it had).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_GUARDED: dict[type, type] = {}


def cpu_bf16_is_native() -> bool:
    """Whether oneDNN has fast bf16 kernels for this CPU (x86 with AVX-512, natively with AVX-512 BF16 or AMX; Arm
    with BF16): torch's own test. Elsewhere (AVX2 only) bf16 runs through slow fallback code: a two-step mokd run
    (resnet10t + vit_tiny, batch 32) took 216 s under bf16 autocast against 19 s in fp32 on an AVX2-only AMD EPYC
    (docs/distill.md, ``--precision``)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


class _OnePixelFp32:
    """Mixin: a CPU-autocast call on a 1-pixel-high or -wide input runs in float32."""

    def forward(self, x: torch.Tensor) -> Any:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and min(x.shape[-2:]) == 1:
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())  # type: ignore[misc]  # a mixin: super() is the guarded module
        return super().forward(x)  # type: ignore[misc]  # a mixin: super() is the guarded module


def _affected(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and not isinstance(m, _OnePixelFp32)
            and max(m.stride) > 1 and max(m.kernel_size) > 1)


def guard_one_pixel_convs(model: nn.Module) -> int:
    """Switch every strided, non-pointwise ``Conv2d`` of ``model`` to the guarded subclass, in place.

    Returns how many modules were switched (idempotent: a second call switches none).
    """
    count = 0
    for m in model.modules():
        if not _affected(m):
            continue
        cls = type(m)
        if cls not in _GUARDED:
            _GUARDED[cls] = type(cls.__name__, (_OnePixelFp32, cls), {"__module__": cls.__module__})
        m.__class__ = _GUARDED[cls]
        count += 1
    return count
