"""The saved-model format of a run: ``<name>.safetensors`` + ``<name>.json``.

``student.json`` holds what eval, export and bench need to rebuild and feed the model:
``{"format": "compressor-encoder/1", "arch": "resnet18", "image_size": 64, "mean": [...],
"std": [...], "embed_dim": 512, ...extra}``. The weights are the backbone's state dict.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from compressor.errors import CompressorError
from compressor.models.encoder import Encoder, InputSpec
from compressor.models.students import create_timm_backbone
from compressor.utils.io import atomic_write, atomic_write_text

FORMAT = "compressor-encoder/1"


def save_encoder(encoder: Encoder, run_dir: str | Path, name: str = "student", **extra: object) -> Path:
    """Write ``<run_dir>/<name>.safetensors`` and ``<name>.json`` (both atomically)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    weights = run_dir / f"{name}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.backbone.state_dict().items()}
    atomic_write(weights, lambda p: save_file(state, str(p)))
    meta = {"format": FORMAT, "arch": encoder.arch, **encoder.spec.to_dict(), "embed_dim": encoder.embed_dim,
            "stem": getattr(encoder, "stem", "imagenet")}
    meta.update(extra)
    atomic_write_text(run_dir / f"{name}.json", json.dumps(meta, indent=2) + "\n")
    return weights


def read_encoder_meta(run_dir: str | Path, name: str = "student") -> dict:
    path = Path(run_dir) / f"{name}.json"
    if not Path(run_dir).is_dir():
        raise CompressorError(f"run directory {str(run_dir)!r} does not exist; pass the --out of a finished "
                              "`compress distill`")
    if not path.is_file():
        raise CompressorError(f"{path} is missing: the run has not finished (resume it with "
                              "`compress distill --resume --out {run_dir}`) or is not a compressor run")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CompressorError(f"{path} is not valid JSON ({err}); re-run the distillation") from err


def load_encoder(run_dir: str | Path, name: str = "student") -> Encoder:
    """Rebuild a saved encoder (eval mode, on CPU) from a run directory."""
    meta = read_encoder_meta(run_dir, name)
    spec = InputSpec.from_dict(meta)
    stem = meta.get("stem", "imagenet")  # runs written before the option existed used timm's own stem
    backbone = create_timm_backbone(meta["arch"], spec.image_size, stem=stem, pretrained=False)
    weights = Path(run_dir) / f"{name}.safetensors"
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises several types for truncated/corrupt files
        raise CompressorError(f"cannot read {weights}: {err}") from err
    backbone.load_state_dict(state, strict=True)
    enc = Encoder(backbone, name=str(run_dir), arch=meta["arch"], spec=spec, embed_dim=int(meta["embed_dim"]),
                  stem=stem)
    return enc.eval()
