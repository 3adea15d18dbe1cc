"""The saved-model format of a run: ``<name>.safetensors`` + ``<name>.json``.

``student.json`` holds what eval, export and bench need to rebuild and feed the model:
``{"format": "compressor-encoder/1", "arch": "resnet18", "image_size": 64, "mean": [...],
"std": [...], "embed_dim": 512, ...extra}``. The weights are the backbone's state dict.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from compressor.errors import CompressorError
from compressor.models.encoder import Encoder, InputSpec
from compressor.models.students import create_timm_backbone
from compressor.rundir import RunDir
from compressor.utils.io import atomic_write

FORMAT = "compressor-encoder/1"


def save_encoder(encoder: Encoder, run_dir: str | Path, name: str = "student", **extra: object) -> Path:
    """Write ``<run_dir>/<name>.safetensors`` and ``<name>.json`` (both atomically)."""
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    weights = run.weights_path(name)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.backbone.state_dict().items()}
    atomic_write(weights, lambda p: save_file(state, str(p)))
    meta = {"format": FORMAT, "arch": encoder.arch, **encoder.spec.to_dict(), "embed_dim": encoder.embed_dim,
            "stem": getattr(encoder, "stem", "imagenet")}
    meta.update(extra)
    run.write_meta(meta, name)
    return weights


def read_encoder_meta(run_dir: str | Path, name: str = "student") -> dict:
    return RunDir(run_dir).read_meta(name)


def load_encoder(run_dir: str | Path, name: str = "student") -> Encoder:
    """Rebuild a saved encoder (eval mode, on CPU) from a run directory."""
    meta = read_encoder_meta(run_dir, name)
    spec = InputSpec.from_dict(meta)
    stem = meta.get("stem", "imagenet")  # runs written before the option existed used timm's own stem
    backbone = create_timm_backbone(meta["arch"], spec.image_size, stem=stem, pretrained=False)
    weights = RunDir(run_dir).weights_path(name)
    if not weights.is_file():
        raise CompressorError(f"{weights} is missing; re-run `compress distill` into a new --out")
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises several types for truncated/corrupt files
        raise CompressorError(f"{weights} is corrupt ({err}); re-run `compress distill` into a new --out") from err
    backbone.load_state_dict(state, strict=True)
    enc = Encoder(backbone, name=str(run_dir), arch=meta["arch"], spec=spec, embed_dim=int(meta["embed_dim"]),
                  stem=stem)
    return enc.eval()
