"""Rebuild a structurally pruned network from its weights alone: the layers take the shapes the file holds.

Structured pruning (``compress prune``, :mod:`compressor.prune`) removes channels, so a pruned student's
``student.safetensors`` no longer fits the network ``timm.create_model`` builds. The weights still say
everything: a convolution's weight is ``out × in/groups × kh × kw``, a norm's weight is its width. So
:func:`fit_to_state_dict` builds the architecture as usual, then resizes each layer whose parameters differ
from the file's — in place, so a timm subclass (``BatchNormAct2d``, ``Conv2dSame``, ``LayerNorm2d``) keeps its
class and its activation — and ``load_state_dict(strict=True)`` then checks every key as for any run.

Only shapes are read: this needs neither torch-pruning nor the pruning record, so a pruned student loads on
a machine that has only the base install.
"""

from __future__ import annotations

import torch
from torch import nn

from compressor.errors import CompressorError

# the layer types whose shapes this module knows how to change (subclasses included)
RESIZABLE = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.LayerNorm)


def fit_to_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Resize every ``Conv2d``/``BatchNorm2d``/``Linear``/``LayerNorm`` of ``model`` whose parameters or buffers
    have other shapes in ``state``, so that ``model.load_state_dict(state, strict=True)`` succeeds.

    The new tensors are uninitialised (the caller loads ``state`` next). A depthwise convolution (``groups ==
    in_channels``) keeps being depthwise at its new width; other grouped convolutions keep their group count.
    Keys missing from ``state`` are left for ``load_state_dict`` to report. Any other layer type whose shapes
    differ raises :class:`CompressorError` naming it. Returns ``model``, changed in place.
    """
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        own = {key: tuple(t.shape) for key, t in [*module._parameters.items(), *module._buffers.items()]
               if t is not None and prefix + key in state}
        wanted = {key: state[prefix + key].shape for key in own}
        differ = [key for key, shape in own.items() if shape != tuple(wanted[key])]
        if not differ:
            continue
        if not isinstance(module, RESIZABLE):
            key = differ[0]
            raise CompressorError(
                f"cannot rebuild layer {name!r} ({type(module).__name__}) of a pruned network: its {key} is "
                f"{tuple(wanted[key])} in the weights but {own[key]} in the model, and only Conv2d, BatchNorm2d, "
                "Linear and LayerNorm layers can be resized")
        if isinstance(module, nn.Conv2d):
            _resize_conv(name, module, wanted)
        elif isinstance(module, nn.BatchNorm2d):
            module.num_features = _width(name, wanted, ("weight", "running_mean"))
        elif isinstance(module, nn.Linear):
            module.out_features, module.in_features = (int(v) for v in wanted["weight"])
        else:  # LayerNorm (LayerNorm2d included): the weight is the normalised shape
            module.normalized_shape = tuple(int(v) for v in _shape(name, wanted, ("weight", "bias")))
        _reallocate(module, wanted)
    return model


def _resize_conv(name: str, conv: nn.Conv2d, wanted: dict[str, torch.Size]) -> None:
    out, per_group = int(wanted["weight"][0]), int(wanted["weight"][1])
    if conv.groups > 1 and conv.groups == conv.in_channels:  # depthwise: in = out / channel multiplier
        multiplier = conv.out_channels // conv.in_channels
        if multiplier < 1 or out % multiplier or per_group != 1:
            raise CompressorError(f"cannot rebuild depthwise layer {name!r} at {out} output channels (weight "
                                  f"{tuple(wanted['weight'])}); the weights do not fit the architecture")
        conv.in_channels = conv.groups = out // multiplier
    else:
        if out % conv.groups:
            raise CompressorError(f"cannot rebuild layer {name!r}: {out} output channels do not split into its "
                                  f"{conv.groups} groups; the weights do not fit the architecture")
        conv.in_channels = per_group * conv.groups
    conv.out_channels = out


def _shape(name: str, wanted: dict[str, torch.Size], keys: tuple[str, ...]) -> torch.Size:
    for key in keys:
        if key in wanted:
            return wanted[key]
    raise CompressorError(f"cannot rebuild layer {name!r}: the weights hold none of {', '.join(keys)}")


def _width(name: str, wanted: dict[str, torch.Size], keys: tuple[str, ...]) -> int:
    return int(_shape(name, wanted, keys)[0])


def _reallocate(module: nn.Module, wanted: dict[str, torch.Size]) -> None:
    """Give each parameter and buffer of ``module`` that has another shape in the file a new, empty tensor."""
    for key, shape in wanted.items():
        if key in module._parameters:
            old = module._parameters[key]
            assert old is not None
            if old.shape != shape:
                module._parameters[key] = nn.Parameter(torch.empty(shape, dtype=old.dtype, device=old.device),
                                                       requires_grad=old.requires_grad)
        else:
            buf = module._buffers[key]
            assert buf is not None
            if buf.shape != shape:
                module._buffers[key] = torch.empty(shape, dtype=buf.dtype, device=buf.device)
