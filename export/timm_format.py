"""``compress export RUN --format timm``: a folder that timm's ``local-dir:`` loader rebuilds exactly.

timm's local-dir loader reads ``config.json`` (``architecture``, ``num_classes``, ``model_args`` and a
``pretrained_cfg`` whose ``input_size``, ``interpolation``, ``crop_pct``, ``mean``/``std`` drive
``timm.data.resolve_data_config``) and ``model.safetensors``; the same folder uploads to the hub as is.
The preprocessing written is the one the student was evaluated and trained for: our eval transform
resizes the shorter side to ``image_size`` (bilinear, antialiased) and centre-crops it, i.e. timm's
``crop_pct 1.0`` + ``bilinear``, not the ``0.875``/``0.95`` + ``bicubic`` of timm's ImageNet configs for
the same architecture. A ViT trained at another size gets ``img_size`` in ``model_args``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import load_file, save_file

from compressor.errors import CompressorError
from compressor.manifest import record_export
from compressor.models.saved import read_encoder_meta
from compressor.rundir import RunDir
from compressor.utils.io import atomic_write, atomic_write_text

SUBDIR = "timm"
# what compressor.data.transforms.eval_transform does, in timm's terms
INTERPOLATION, CROP_PCT, CROP_MODE = "bilinear", 1.0, "center"


def timm_config(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of a student described by its ``student.json``."""
    size = int(meta["image_size"])
    model_args: dict[str, Any] = {}
    try:  # a model taking img_size (a ViT) is rebuilt at the size it was trained at; shapes only, on meta
        with torch.device("meta"):
            timm.create_model(meta["arch"], pretrained=False, num_classes=0, img_size=size)
        model_args["img_size"] = size
    except TypeError:
        pass  # CNNs take any size and have no img_size argument
    return {
        "architecture": meta["arch"], "num_classes": 0, "num_features": int(meta["embed_dim"]),
        "model_args": model_args,
        "pretrained_cfg": {
            "input_size": [3, size, size], "fixed_input_size": bool(model_args),
            "interpolation": INTERPOLATION, "crop_pct": CROP_PCT, "crop_mode": CROP_MODE,
            "mean": list(meta["mean"]), "std": list(meta["std"]), "num_classes": 0, "classifier": None,
        },
    }


def _bench_table(run_dir: Path) -> str:
    run = RunDir(run_dir)
    for path in (run.bench_path, run.export_dir / run.bench_path.name):
        if path.is_file():
            rows = json.loads(path.read_text()).get("results", [])
            lines = ["| backend | format | precision | batch | p50 ms | throughput img/s |",
                     "|---|---|---|---|---|---|"]
            lines += [f"| {r['backend']} | {r['format']} | {r['precision']} | {r['batch']} | {r['p50_ms']:.2f} | "
                      f"{r['throughput_ips']:.0f} |" for r in rows]
            return "\n".join(lines) + f"\n\nFrom `{path.relative_to(run_dir)}`.\n"
    return "Not measured yet: run `compress bench RUN --json RUN/bench.json` and export again.\n"


def model_card(run_dir: Path, meta: dict[str, Any], cfg: dict[str, Any]) -> str:
    """README.md: what the student is, what it was distilled from and on, how good and how fast."""
    teachers = ", ".join(f"`{t.get('name')}` ({t.get('weights')})" for t in meta.get("teachers", [])) or "none"
    eval_path = RunDir(run_dir).eval_path
    ev = json.loads(eval_path.read_text()) if eval_path.is_file() else {}
    knn = f"{100 * ev['knn_top1']:.2f}% kNN top-1 (k=20) on `{ev.get('data')}`" if "knn_top1" in ev \
        else "not evaluated yet (`compress eval RUN`)"
    size = meta["image_size"]
    return f"""---
library_name: timm
tags: [image-feature-extraction, timm, compressor]
---
# {meta['arch']} distilled with compressor

An image encoder ({meta['embed_dim']}-d pooled features, no classifier) trained with `compress distill`.

- Architecture: `{meta['arch']}`, input {size}x{size}, mean {list(meta['mean'])}, std {list(meta['std'])}
- Recipe: `{meta.get('recipe', cfg.get('recipe'))}`, {meta.get('steps', '?')} steps
- Teacher(s): {teachers}
- Data: `{cfg.get('data')}`
- Quality: {knn}

## Use

```python
import timm
model = timm.create_model("local-dir:PATH_TO_THIS_FOLDER", pretrained=True).eval()
cfg = timm.data.resolve_data_config({{}}, model=model)
transform = timm.data.create_transform(**cfg)   # resize shorter side to {size} (bilinear), centre crop {size}
features = model(transform(img).unsqueeze(0))   # (1, {meta['embed_dim']})
```

## Latency

{_bench_table(run_dir)}"""


def _check_rebuild(run_dir: Path, out: Path, size: int) -> dict[str, Any]:
    """Rebuild the folder with ``timm.create_model("local-dir:...")`` and compare it with the run's student."""
    from compressor.models.saved import load_encoder

    student = load_encoder(run_dir)
    rebuilt = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = student(x), rebuilt(x)
    if a.shape != b.shape:
        raise CompressorError(f"timm rebuilds {out} with {tuple(b.shape)} outputs, the student gives "
                              f"{tuple(a.shape)}; please report this")
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    max_diff = float((a - b).abs().max())
    if max_diff > 1e-4:
        raise CompressorError(f"timm rebuilds {out} with outputs {max_diff:.3g} away from the student's; "
                              "please report this")
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "max_abs_diff": max_diff,
            "threshold": 1.0, "n_images": 4, "data": "random tensors (same weights, same graph)"}


def export_timm(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, dict[str, Any], Any]:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` into ``RUN/export/timm/``.

    Returns (folder, manifest entry, manifest); the exporter wraps them in its ``ExportResult``.
    """
    run_dir = Path(run_dir)
    meta = read_encoder_meta(run_dir)
    if meta.get("stem") == "small":  # timm's loader builds its own stem (a ViT: its own 16 px patches)
        raise CompressorError(f"{run_dir}'s student has the small-input stem (--stem small, or auto below 96 px), "
                              "which timm's loader does not rebuild; export it with --format onnx, or distil "
                              "with --stem imagenet for a timm folder")
    if meta.get("pruned"):  # timm.create_model builds the full widths; the pruned weights do not fit them
        raise CompressorError(f"{run_dir}'s student is pruned (`compress prune`), and timm's loader rebuilds only "
                              "unpruned networks (a pruned one rebuilds through compressor's load_encoder); "
                              "export it with --format onnx or openvino")
    rd = RunDir(run_dir)
    cfg = rd.read_config() if rd.config_path.is_file() else {}
    base = Path(out_dir) if out_dir else run_dir / "export"
    out = base / SUBDIR
    src = rd.weights_path()
    try:
        state = load_file(str(src))
    except Exception as err:  # safetensors raises several types for truncated/corrupt files
        raise CompressorError(f"cannot read {src}: {err}; re-run the distillation") from err
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    config = timm_config(meta)
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write(out / "model.safetensors", lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    atomic_write_text(out / "README.md", model_card(run_dir, meta, cfg))
    fidelity = _check_rebuild(run_dir, out, int(meta["image_size"]))
    size = sum(p.stat().st_size for p in out.iterdir())
    entry = {"file": SUBDIR, "format": "timm", "precision": "fp32", "size_bytes": size,
             "size_mb": round(size / 1e6, 3), "architecture": meta["arch"], "fidelity": fidelity,
             "export_seconds": round(time.time() - started, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    manifest = record_export(base, SUBDIR, entry, student=meta)
    return out, entry, manifest
