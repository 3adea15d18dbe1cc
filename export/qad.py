"""Quantization-aware distillation (QAD): the student fine-tuned under NNCF's fake quantization, learning
from the run's own fp32 student, then exported as the INT8 graph it was trained for.

Post-training quantization (``quantize.py``, NNCF PTQ in ``openvino.py``) rounds a network that never saw
rounding; depthwise/SE students (MobileNetV3, EfficientNet) lose too much that way (docs/benchmarks.md).
QAD inserts fake quantizers where the deployed INT8 graph quantizes, initialises their ranges on the
calibration images exactly as PTQ does, and then trains weights and ranges for ``steps`` steps with the
cosine distillation of :mod:`compressor.finetune` toward the frozen fp32 student (straight-through
gradients through the rounding, NNCF's own quantizer ops).

Why NNCF (``pip install 'compressor[openvino]'``, already the openvino extra), measured here on a
mobilenetv3_large_100 at 128 px (docs/export.md, "Which compression"):

- its torch QAT is ``nncf.quantize`` on the ``nn.Module`` followed by ordinary training, the flow its
  documentation gives; the quantizers' placement is the one OpenVINO's CPU plugin and TensorRT's explicit
  quantization execute (on the inputs of convolutions/matmuls and their weights), so the trained graph is
  the deployed one for ``openvino-int8`` and ``trt-int8``;
- it exports its quantizers as ONNX ``QuantizeLinear``/``DequantizeLinear`` pairs (ONNX Runtime,
  TensorRT) or as OpenVINO ``FakeQuantize`` (read natively by ``openvino.convert_model``);
- torch's own eager/FX QAT (``torch.ao.quantization``) is deprecated, did not fold timm's
  ``BatchNormAct2d`` and its fake-quantized graph failed ``torch.onnx.export`` here; torchao's PT2E and
  ModelOpt are not installed in any extra and would add a second quantization stack.

Schemes (``SCHEMES``): ``onnx-int8`` and ``openvino-int8`` train NNCF's ``mixed`` preset (asymmetric 8-bit
activations × int8 per-channel symmetric weights: ORT's U8S8 kernels, and what NNCF advises for non-ReLU
activations such as SiLU and HardSwish), so one QAD run serves both (``RUN/qad/mixed.pt``), written as Q/DQ
for ORT and as FakeQuantize for OpenVINO. Measured on efficientnet_b0 (docs/benchmarks.md): with NNCF's
default ``performance`` preset (symmetric activations) the OpenVINO QAD IR reached 0.972 mean cosine, with
``mixed`` 0.989 from the same number of steps. ``trt-int8`` trains ``performance`` with every activation
forced signed (TensorRT takes only int8 symmetric Q/DQ), ``RUN/qad/signed.pt``.

BatchNorm is folded into the preceding convolution before the quantizers go in
(:func:`fold_batchnorm`): the deployed graph has no BatchNorm (ORT and OpenVINO fold it), so the weights
that are fake-quantized during training must be the folded ones, or training would optimise a rounding
the runtime never performs.
"""

from __future__ import annotations

import copy
import importlib.metadata
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compressor.errors import CompressorError
from compressor.finetune import FinetuneConfig, distill_to_reference
from compressor.models.encoder import Encoder

log = logging.getLogger("compressor")

QAD_DIR = "qad"  # RUN/qad/<scheme>.pt: the resumable QAD checkpoint of each scheme (Scheme.name)


@dataclass(frozen=True)
class Scheme:
    """How one INT8 target is fake-quantized during QAD and written afterwards."""

    name: str  # the QAD checkpoint's name, RUN/qad/<name>.pt: formats with the same scheme share one training
    preset: str  # NNCF QuantizationPreset: "mixed" (asymmetric activations) or "performance" (symmetric)
    signed_activations: bool  # force int8 activations (TensorRT)
    onnx_mode: str  # "qdq": ONNX Q/DQ pairs; "fake_quantize": OpenVINO's FakeQuantize, for openvino.convert_model
    activations: str
    weights: str = "int8 (per-channel, symmetric)"


SCHEMES: dict[str, Scheme] = {
    "onnx-int8": Scheme("mixed", "mixed", False, "qdq", "uint8 (per-tensor, asymmetric)"),
    "openvino-int8": Scheme("mixed", "mixed", False, "fake_quantize", "uint8 (per-tensor, asymmetric)"),
    "trt-int8": Scheme("signed", "performance", True, "qdq", "int8 (per-tensor, symmetric)"),
}


@dataclass(frozen=True)
class QadConfig:
    """The QAD fields of ``compress export`` (``--qad-steps`` and friends)."""

    steps: int
    lr: float = 1e-5
    batch_size: int = 32
    pool_size: int = 1024  # training images drawn from the run's data (fewer when they would not fit in memory)
    seed: int = 0

    def finetune(self) -> FinetuneConfig:
        return FinetuneConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                              checkpoint_every=max(1, min(50, self.steps // 4 or 1)))


def nncf_unavailable() -> str | None:
    """``None`` when NNCF's torch backend imports, else the one-line install hint."""
    from compressor.utils.extras import install_hint

    try:
        import nncf  # noqa: F401
    except ImportError:
        return f"QAD needs NNCF: {install_hint('openvino')} (openvino and nncf)"
    return None


def check_qad(fmt: str) -> None:
    """Refuse a format QAD cannot produce, or a machine without NNCF, before anything is trained."""
    if fmt not in SCHEMES:
        raise CompressorError(f"--qad-steps trains for an INT8 format; {fmt!r} is not one: pass --format "
                              f"{', '.join(SCHEMES)}, or drop --qad-steps")
    if (reason := nncf_unavailable()) is not None:
        raise CompressorError(reason)


# -- BatchNorm folding ------------------------------------------------------------------------------------
def _set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def fold_batchnorm(model: nn.Module, example: torch.Tensor, *, atol: float = 1e-3) -> tuple[nn.Module, int]:
    """A copy of ``model`` (eval mode) with every BatchNorm that directly consumes a Conv2d's output folded
    into that convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``); returns it and the number folded.

    Pairs are found by running ``example`` once with forward hooks (a BatchNorm whose input tensor *is* a
    Conv2d's output). A timm ``BatchNormAct2d`` keeps its activation and dropout. The folded copy must
    give the same embeddings as the original on ``example`` (relative ``atol``), else the fold is refused.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    names = {m: n for n, m in folded.named_modules()}
    produced: dict[int, nn.Module] = {}
    pairs: list[tuple[str, str]] = []
    hooks = []
    for m in folded.modules():
        if type(m) is nn.Conv2d:
            hooks.append(m.register_forward_hook(lambda mod, inp, out: produced.__setitem__(id(out), mod)))
        elif isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
            def on_bn(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
                src = produced.get(id(inp[0]))
                if src is not None and (names[src], names[mod]) not in pairs:
                    pairs.append((names[src], names[mod]))
            hooks.append(m.register_forward_hook(on_bn))
    with torch.no_grad():
        before = folded(example)
    for h in hooks:
        h.remove()
    users: dict[str, list[str]] = {}
    for conv_name, bn_name in pairs:
        users.setdefault(conv_name, []).append(bn_name)
    for conv_name, bn_name in pairs:
        if len(users[conv_name]) != 1:  # a convolution read by two BatchNorms cannot absorb either
            continue
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        _set_module(folded, conv_name, fuse_conv_bn_eval(conv, bn))
        rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if isinstance(m, nn.Module)]
        _set_module(folded, bn_name, nn.Sequential(*rest) if rest else nn.Identity())
    with torch.no_grad():
        after = folded(example)
    err = float((after - before).abs().max() / before.abs().max().clamp_min(1e-12))
    if not err <= atol:
        raise CompressorError(f"folding BatchNorm into the convolutions changed the embeddings (relative error "
                              f"{err:.2e}); this architecture's BatchNorms are not foldable, report it")
    return folded, len(users)


# -- the QAD model ----------------------------------------------------------------------------------------
@contextmanager
def _quiet() -> Iterator[None]:
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            nncf_log.setLevel(level)


def insert_quantizers(encoder: Encoder, fmt: str, calib: np.ndarray) -> tuple[Encoder, dict]:
    """BatchNorm folded, then NNCF's fake quantizers inserted for ``fmt``'s scheme, their ranges set on
    ``calib`` (as PTQ would); returns the fake-quantized encoder and the facts for the manifest."""
    import nncf

    scheme = SCHEMES[fmt]
    x = torch.from_numpy(np.ascontiguousarray(calib))
    folded, n_folded = fold_batchnorm(encoder.backbone, x[: min(len(x), 4)])
    # batches of 16: NNCF's torch statistics run a hooked forward per item, ~1 s per 224-px image one at a time
    batches = [x[i:i + 16] for i in range(0, len(x), 16)]
    with _quiet():
        quantized = nncf.quantize(folded, nncf.Dataset(batches), subset_size=len(batches),  # items, not images
                                  preset=nncf.QuantizationPreset(scheme.preset), fast_bias_correction=True)
    quantizers = _quantizers(quantized)
    if scheme.signed_activations:
        # TensorRT executes int8 only: a quantizer NNCF made unsigned (after a ReLU) becomes signed with the same
        # scale (NNCF's `signed` setter recomputes its levels), half its positive resolution, which QAD then
        # trains for. NNCF's own `signedness_to_force` is refused by every HW config of NNCF 3.4 here.
        for q in quantizers:
            if not q.signed:
                q.signed = True
    n_quantizers = len(quantizers)
    if n_quantizers == 0:
        raise CompressorError(f"NNCF inserted no quantizers into {encoder.arch}; QAD cannot help it, export "
                              "without --qad-steps")
    qenc = Encoder(quantized, name=encoder.name, arch=encoder.arch, spec=encoder.spec,
                   embed_dim=encoder.embed_dim, stem=getattr(encoder, "stem", "imagenet"))
    facts = {"library": "nncf", "version": importlib.metadata.version("nncf"), "preset": scheme.preset,
             "activations": scheme.activations, "weights": scheme.weights, "batchnorm_folded": n_folded,
             "fake_quantizers": n_quantizers, "range_init_images": len(x)}
    return qenc, facts


def _quantizers(model: nn.Module) -> list[Any]:
    """NNCF's quantizer modules in ``model`` (``BaseQuantizer``: ``signed``, ``set_export_mode``, ...)."""
    from nncf.torch.quantization.layers import BaseQuantizer

    return [m for m in model.modules() if isinstance(m, BaseQuantizer)]


def train_qad(encoder: Encoder, fmt: str, calib: np.ndarray, pool: np.ndarray, config: QadConfig, *,
              checkpoint: Path | None, source: str, source_digest: str | None = None) -> tuple[Encoder, dict]:
    """Insert the quantizers and distill toward the fp32 ``encoder`` for ``config.steps`` steps
    (resumable through ``checkpoint``); returns the fake-quantized encoder and the manifest's ``qad`` block.

    ``source_digest`` (the student weights' SHA-256) is part of the checkpoint's key: a student trained
    again in the same folder never resumes the QAD of the one before."""
    check_qad(fmt)
    config.finetune().check("--qad-steps")
    qenc, facts = insert_quantizers(encoder, fmt, calib)
    key = {"job": "qad", "scheme": SCHEMES[fmt].name, "source": source, "weights": source_digest,
           "calib_images": len(calib)}
    with _quiet():
        record = distill_to_reference(qenc, encoder, pool, config.finetune(), key=key, checkpoint=checkpoint,
                                      description=f"QAD {fmt}")
    return qenc, {**facts, **record, "scheme": SCHEMES[fmt].name, "target": f"the fp32 student of {source}"}


def write_onnx(qenc: Encoder, fmt: str, path: Path, *, opset: int, bake_preprocess: bool) -> dict:
    """The fake-quantized encoder as ONNX: Q/DQ pairs (ORT, TensorRT) or OpenVINO FakeQuantize ops
    (``openvino-int8``, converted by ``openvino.convert_model``); returns export_onnx's facts."""
    from nncf.torch.quantization.layers import QuantizerExportMode

    from compressor.export.onnx import export_onnx

    mode = (QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS if SCHEMES[fmt].onnx_mode == "qdq"
            else QuantizerExportMode.FAKE_QUANTIZE)
    for q in _quantizers(qenc):
        q.set_export_mode(mode)
    qenc.eval()
    with _quiet():
        # onnxslim would constant-fold the weights' QuantizeLinear and rewrite FakeQuantize's domain: leave as is
        return export_onnx(qenc, path, opset=opset, bake_preprocess=bake_preprocess, simplify=False)


def training_pool(encoder: Encoder, data: str, root: str | None, config: QadConfig) -> np.ndarray:
    """The images QAD trains on: a class-stratified sample of the run's training split, capped at 512 MB."""
    from compressor.export.images import load_images

    per_image = 3 * encoder.spec.image_size ** 2 * 4
    n = max(config.batch_size, min(config.pool_size, config.steps * config.batch_size, (512 << 20) // per_image))
    return load_images(data, encoder.spec, n, split="train", root=root, seed=config.seed + 1).images
