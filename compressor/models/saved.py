"""The saved-model format of a run: ``<name>.safetensors`` + ``<name>.json``.

``student.json`` holds what eval, export and bench need to rebuild and feed the model:
``{"format": "compressor-encoder/1", "arch": "resnet18", "image_size": 64, "mean": [...],
"std": [...], "embed_dim": 512, ...extra}``. The weights are the backbone's state dict; the
``.safetensors`` header repeats the description (``safe_open(f).metadata()``: arch, embed_dim, image_size,
mean, std, stem, as strings, the lists as JSON) so that the weights file copied alone still says how to
rebuild and feed the model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from compressor.errors import CompressorError
from compressor.models.encoder import Encoder, InputSpec
from compressor.models.resize import fit_to_state_dict
from compressor.models.students import create_timm_backbone
from compressor.rundir import RunDir
from compressor.utils.io import atomic_write, check_regular_file

FORMAT = "compressor-encoder/1"


def save_encoder(encoder: Encoder, run_dir: str | Path, name: str = "student", **extra: object) -> Path:
    """Write ``<run_dir>/<name>.safetensors`` and ``<name>.json`` (both atomically)."""
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    weights = run.weights_path(name)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.backbone.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # a NaN student scores 10% in eval and exports "fine": never write one
        raise CompressorError(f"refusing to write {weights}: {bad[0]} holds NaN or infinite values; the run "
                              "diverged (lower the learning rate and train again)")
    meta = {"format": FORMAT, "arch": encoder.arch, **encoder.spec.to_dict(), "embed_dim": encoder.embed_dim,
            "stem": getattr(encoder, "stem", "imagenet")}
    header = weights_header(meta)
    atomic_write(weights, lambda p: save_file(state, str(p), metadata=header))
    meta.update(extra)
    run.write_meta(meta, name)
    return weights


def weights_header(meta: dict) -> dict[str, str]:
    """The ``__metadata__`` of ``<name>.safetensors``: safetensors keeps only strings, so lists go as JSON.

    ``format`` is ``pt``, the value Hugging Face loaders check; the description's own format tag goes
    under ``compressor_format``.
    """
    header = {"format": "pt", "compressor_format": str(meta["format"])}
    for key in ("arch", "embed_dim", "image_size", "mean", "std", "stem"):
        value = meta[key]
        header[key] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return header


def read_encoder_meta(run_dir: str | Path, name: str = "student") -> dict:
    run = RunDir(run_dir)
    meta = run.read_meta(name)
    problem = _meta_problem(meta)
    if problem:
        raise CompressorError(f"{run.meta_path(name)} is not a compressor model description ({problem}); re-run "
                              "the distillation, or restore the file from the run")
    return meta


def _meta_problem(meta: dict) -> str | None:
    """What is wrong with a ``student.json`` (missing or mistyped fields), or ``None``."""
    need = {"arch": str, "image_size": int, "mean": list, "std": list, "embed_dim": int}
    for key, typ in need.items():
        if key not in meta:
            return f"no {key!r}"
        if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
            return f"{key!r} must be {typ.__name__}"
    if not (8 <= meta["image_size"] <= 8192 and meta["embed_dim"] >= 1):
        return "image_size or embed_dim out of range"
    numbers = meta["mean"] + meta["std"]
    if len(meta["mean"]) != 3 or len(meta["std"]) != 3 or min(meta["std"], default=0) <= 0 or not all(
            isinstance(v, int | float) and math.isfinite(v) for v in numbers):
        return "mean and std must be three finite numbers each, std positive"
    return None


def load_encoder(run_dir: str | Path, name: str = "student") -> Encoder:
    """Rebuild a saved encoder (eval mode, on CPU) from a run directory."""
    meta = read_encoder_meta(run_dir, name)
    spec = InputSpec.from_dict(meta)
    stem = meta.get("stem", "imagenet")  # runs written before the option existed used timm's own stem
    backbone = create_timm_backbone(meta["arch"], spec.image_size, stem=stem, pretrained=False)
    weights = RunDir(run_dir).weights_path(name)
    if not weights.exists() and not weights.is_symlink():
        raise CompressorError(f"{weights} is missing; re-run `compress distill` into a new --out")
    check_regular_file(weights, "student weights")  # a FIFO would block the reader forever
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises several types for truncated/corrupt files
        raise CompressorError(f"{weights} is corrupt ({err}); re-run `compress distill` into a new --out") from err
    if meta.get("pruned"):  # channels removed by `compress prune`: the layers take the file's shapes
        fit_to_state_dict(backbone, state)
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0][:160]
        raise CompressorError(f"{weights} does not match {meta['arch']} in {name}.json ({first}); the run's files "
                              "were mixed or edited: re-run the distillation") from None
    enc = Encoder(backbone, name=str(run_dir), arch=meta["arch"], spec=spec, embed_dim=int(meta["embed_dim"]),
                  stem=stem)
    return enc.eval()
