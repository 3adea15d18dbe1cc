"""Structured channel pruning of an encoder with torch-pruning (DepGraph, Fang et al., CVPR 2023).

Removing an output channel of one convolution forces the same removal in every layer that shares that
tensor: the next layer's input channel, the BatchNorm between them, every block added to it through a
residual connection, a depthwise convolution's group. torch-pruning's ``DependencyGraph`` traces the network
once and gathers each such set of coupled channels into a *group*; its ``MetaPruner`` then scores every
channel of a group by the group's L2 weight magnitude (``GroupMagnitudeImportance``: the channel's norms
summed over the group's layers) and removes the lowest ``ratio`` of each group — the same fraction of every
group ("uniform"), not one global threshold that can empty a whole stage.

The embedding keeps its width: the group that produces the model's output (found by asking the graph which
layers a probe ``Linear`` on the output depends on) is left whole, so the pruned student is a drop-in
replacement for the unpruned one — same ``embed_dim``, and the same kNN banks and downstream heads fit it.
A ResNet keeps its last stage's residual stream (every ``conv2`` and the shortcut of ``layer4``) for that;
a MobileNetV3 only its ``conv_head``.

Attention heads (ViTs and other attention models) need torch-pruning's per-architecture head mapping
(``num_heads``, the fused ``qkv``), which is not wired here: those models are refused with one line.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

import torch
from torch import nn

from compressor.errors import CompressorError
from compressor.models.encoder import Encoder
from compressor.models.resize import fit_to_state_dict
from compressor.models.stems import vit_patch
from compressor.models.students import create_timm_backbone
from compressor.utils.extras import require

log = logging.getLogger("compressor")

LIBRARY = "torch-pruning"
IMPORTANCE = "group L2 weight magnitude (torch-pruning GroupMagnitudeImportance, p=2), the same ratio per group"
EMBEDDING = "produce the embedding"  # why a layer keeps all its output channels
NO_GROUP = "are in no group torch-pruning can prune"
CNN_HINT = "prune a ResNet, MobileNet, EfficientNet, RegNet or GhostNet student"


# Channels kept per group are rounded to a multiple of 8: measured on resnet18 at 224 px (docs/benchmarks.md),
# ratio 0.3 without rounding (odd widths such as 45, 90, 179) ran only 1.19× faster in ORT fp32 while 0.5
# (widths 32, 64, 128, 256) ran 3.17×: the CPU kernels are blocked by 8/16 channels.
ROUND_TO = 8


def library_version() -> str:
    try:
        return importlib.metadata.version(LIBRARY)
    except importlib.metadata.PackageNotFoundError:  # installed without metadata (a vendored copy)
        return str(getattr(require("torch_pruning", "structured pruning"), "__version__", "unknown"))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def attention_layers(model: nn.Module) -> list[str]:
    """Names of the attention blocks of ``model`` (what this module refuses to prune)."""
    found = [name for name, m in model.named_modules()
             if isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__]
    if not found and vit_patch(model) is not None:
        found = ["patch_embed"]
    return found


def embedding_layers(model: nn.Module, example: torch.Tensor, width: int) -> list[nn.Module]:
    """The layers whose output channels are the embedding's, found with torch-pruning's dependency graph.

    A probe ``Linear(width, 1)`` is put after the model; the group of the probe's *input* channels holds every
    layer whose output channels reach the embedding, through residual additions, norms and the pooling.
    """
    tp = require("torch_pruning", "structured pruning (compress prune)")
    probe = nn.Linear(width, 1)
    graph = tp.DependencyGraph().build_dependency(nn.Sequential(model, probe), example_inputs=example)
    group = graph.get_pruning_group(probe, tp.prune_linear_in_channels, idxs=[0])
    own = {id(m) for m in model.modules()}  # the graph's nodes also name functional ops (add, flatten)
    return [dep.target.module for dep, _ in group
            if graph.is_out_channel_pruning_fn(dep.handler) and id(dep.target.module) in own]


def _out_width(m: nn.Module) -> int:
    if isinstance(m, nn.Conv2d):
        return int(m.out_channels)
    assert isinstance(m, nn.Linear)
    return int(m.out_features)


def _macs(model: nn.Module, example: torch.Tensor) -> int | None:
    tp = require("torch_pruning", "structured pruning (compress prune)")
    try:
        macs, _ = tp.utils.count_ops_and_params(model, example)
        return int(macs)
    except Exception as err:  # a counter hook that does not know a layer: the figure is optional
        log.warning("could not count the MACs (%s: %s); the record leaves them out", type(err).__name__, err)
        return None


def prune_encoder(encoder: Encoder, ratio: float) -> dict[str, Any]:
    """Remove ``ratio`` of the output channels of every prunable group of ``encoder.backbone``, in place.

    Returns the record kept in ``student.json`` (``pruned``): library and version, importance, parameters and
    MACs (one image) before and after, and the layers left at full width with the reason.
    """
    tp = require("torch_pruning", "structured pruning (compress prune)")
    model, size = encoder.backbone, encoder.spec.image_size
    attention = attention_layers(model)
    if attention:
        raise CompressorError(f"{encoder.arch} has attention layers ({attention[0]}, ...), whose heads compress "
                              f"prune cannot remove with torch-pruning yet; {CNN_HINT}")
    model.eval()  # trace and count in eval mode: BatchNorm's statistics stay as trained
    example = torch.zeros(1, 3, size, size)
    linear_layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    before = {n: _out_width(m) for n, m in linear_layers.items()}
    params_before, macs_before = count_params(model), _macs(model, example)
    try:
        kept = embedding_layers(model, example, encoder.embed_dim)
        pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=ratio, global_pruning=False, ignored_layers=kept,
                                      round_to=ROUND_TO)
        pruner.step()
        with torch.no_grad():
            out = model(example)
    except CompressorError:
        raise
    except Exception as err:  # torch-pruning's tracer or a pruning function failing on an unknown layer
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise CompressorError(f"torch-pruning cannot prune {encoder.arch} ({type(err).__name__}: {first}); "
                              f"{CNN_HINT}") from err
    if tuple(out.shape) != (1, encoder.embed_dim):
        raise CompressorError(f"pruning changed {encoder.arch}'s output from (1, {encoder.embed_dim}) to "
                              f"{tuple(out.shape)}; please report this")
    kept_ids = {id(m) for m in kept}
    unpruned = {n: (EMBEDDING if id(m) in kept_ids else NO_GROUP)
                for n, m in linear_layers.items() if _out_width(m) == before[n]}
    log.info("pruned %.0f%% of the channels of %s: %s -> %s parameters", 100 * ratio, encoder.arch,
             f"{params_before:,}", f"{count_params(model):,}")
    for why in (EMBEDDING, NO_GROUP):
        names = [n for n, w in unpruned.items() if w == why]
        if names:
            log.info("left at full width, as they %s: %s", why, ", ".join(names))
    return {"ratio": ratio, "library": LIBRARY, "library_version": library_version(), "importance": IMPORTANCE,
            "round_to": ROUND_TO,
            "params_before": params_before, "params_after": count_params(model),
            "macs_before": macs_before, "macs_after": _macs(model, example), "unpruned": unpruned}


def check_rebuild(encoder: Encoder) -> None:
    """That the pruned ``encoder`` rebuilds from its weights alone (what ``load_encoder`` will do) and gives
    the same outputs: checked before any training is spent on it."""
    state = {k: v.detach().clone() for k, v in encoder.backbone.state_dict().items()}
    fresh = create_timm_backbone(encoder.arch, encoder.spec.image_size, stem=encoder.stem, pretrained=False)
    try:
        fit_to_state_dict(fresh, state)
    except CompressorError as err:  # a layer type whose pruned shape the loader cannot take (ConvNeXt's gamma)
        raise CompressorError(f"{err}, so the pruned {encoder.arch} could not be loaded back; {CNN_HINT}") from None
    try:
        fresh.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0][:160]
        raise CompressorError(f"the pruned {encoder.arch} does not rebuild from its weights ({first}); "
                              f"{CNN_HINT}") from None
    x = torch.randn(2, 3, encoder.spec.image_size, encoder.spec.image_size, generator=torch.Generator().manual_seed(0))
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        diff = float((fresh.eval()(x) - encoder(x)).abs().max())
    encoder.train(was_training)
    if diff > 1e-4:
        raise CompressorError(f"the pruned {encoder.arch} rebuilt from its weights differs by {diff:.3g}; "
                              f"{CNN_HINT}")
