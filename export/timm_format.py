"""``compress export RUN --format timm``: a folder that timm's ``local-dir:`` loader rebuilds exactly.

timm's local-dir loader reads ``config.json`` (``architecture``, ``num_classes``, ``model_args`` and a
``pretrained_cfg`` whose ``input_size``, ``interpolation``, ``crop_pct``, ``mean``/``std`` drive
``timm.data.resolve_data_config``) and ``model.safetensors``; the same folder uploads to the hub as is.
The preprocessing written is the one the student was evaluated and trained for: our eval transform
resizes the shorter side to ``image_size`` (bilinear, antialiased) and centre-crops it, i.e. timm's
``crop_pct 1.0`` + ``bilinear``, not the ``0.875``/``0.95`` + ``bicubic`` of timm's ImageNet configs for
the same architecture. A ViT trained at another size gets ``img_size`` in ``model_args``. A student that
came from the hub (``hf-hub:org/name``) is written as the timm architecture its repository's ``config.json``
names, with that repository's ``model_args``.

``README.md`` is the model card the hub shows: what the student is and was distilled from, on what data for
how many steps, and its figures as the run recorded them (``eval.json``: kNN and linear-probe top-1;
``bench.json``: latency), so ``hf upload ORG/NAME RUN/export/timm`` publishes a complete repository that
``timm.create_model("hf-hub:ORG/NAME", pretrained=True)`` loads (docs/export.md).
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
from compressor.manifest import ExportEntry, FidelityRecord, record_export
from compressor.models import _hub
from compressor.models.saved import read_encoder_meta
from compressor.rundir import RunDir
from compressor.utils.io import atomic_write, atomic_write_text

SUBDIR = "timm"
# what compressor.data.transforms.eval_transform does, in timm's terms
INTERPOLATION, CROP_PCT, CROP_MODE = "bilinear", 1.0, "center"


def timm_config(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of a student described by its ``student.json``."""
    size = int(meta["image_size"])
    arch, model_args = meta["arch"], {}
    if _hub.is_hub_model(arch):  # the architecture and arguments of the repository the student came from
        hub = _hub.hub_model(arch, weights=False)
        arch = hub.arch
        model_args = {k: v for k, v in hub.model_args.items() if k not in ("num_classes", "pretrained", "img_size")}
    try:  # a model taking img_size (a ViT) is rebuilt at the size it was trained at; shapes only, on meta
        with torch.device("meta"):
            timm.create_model(arch, pretrained=False, **{**model_args, "num_classes": 0, "img_size": size})
        model_args["img_size"] = size
    except TypeError:
        pass  # CNNs take any size and have no img_size argument
    return {
        "architecture": arch, "num_classes": 0, "num_features": int(meta["embed_dim"]),
        "model_args": model_args,
        "pretrained_cfg": {
            "input_size": [3, size, size], "fixed_input_size": "img_size" in model_args,
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


def _read_json(path: Path) -> dict[str, Any]:
    """A run's JSON record, or ``{}`` when it is absent or unreadable (the card then says "not measured")."""
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _quality(ev: dict[str, Any]) -> str:
    """The ``eval.json`` figures as a table, or how to produce them."""
    if "knn_top1" not in ev:
        return "Not evaluated yet: run `compress eval RUN` and export again.\n"
    probe = ev.get("probe")  # which probe gave linear_top1 (compressor.eval.linear): a name, or its record
    if isinstance(probe, dict):
        strength = probe.get("C")
        c_note = f", C={strength:g}" if isinstance(strength, int | float) else ""
        probe = f"{probe.get('kind', '')}{c_note}".strip(", ")
    probe_note = f" ({probe})" if probe else ""
    split = f"{ev['n_train']} bank / {ev['n_query']} query images" if "n_train" in ev and "n_query" in ev else ""
    rows = [("kNN top-1 (k=20, T=0.07)", _percent(ev["knn_top1"]))]
    if ev.get("linear_top1") is not None:
        rows.append((f"linear-probe top-1{probe_note}", _percent(ev["linear_top1"])))
    teacher = ev.get("teacher") if isinstance(ev.get("teacher"), dict) else {}
    if teacher and "knn_top1" in teacher:
        rows.append(("teacher kNN top-1", _percent(teacher["knn_top1"])))
    lines = ["| metric | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
    return "\n".join(lines) + f"\n\nOn `{ev.get('data')}`{f' ({split})' if split else ''}; from `eval.json`.\n"


def _headline(ev: dict[str, Any]) -> str:
    if "knn_top1" not in ev:
        return "not evaluated yet (`compress eval RUN`)"
    return f"{_percent(ev['knn_top1'])} kNN top-1 (k=20) on `{ev.get('data')}`"


def model_card(run_dir: Path, meta: dict[str, Any], cfg: dict[str, Any]) -> str:
    """README.md: what the student is, what it was distilled from and on, how good and how fast.

    Every figure is read from the run's own records (``student.json``, ``run.json``, ``config.yaml``,
    ``eval.json``, ``bench.json``), never restated by hand.
    """
    run = RunDir(run_dir)
    info, ev = _read_json(run.info_path), _read_json(run.eval_path)
    teachers = ", ".join(f"`{t.get('name')}` ({t.get('weights')})" for t in meta.get("teachers", [])) or "none"
    arch, size, dim = meta["arch"], meta["image_size"], meta["embed_dim"]
    timm_arch = timm_config(meta)["architecture"]
    start = (info.get("student") or {}).get("weights", "random init")
    hub_repo = arch[len(_hub.HF_PREFIX):].partition("@")[0] if _hub.is_hub_model(arch) else ""
    steps = meta.get("steps", "?")
    planned = info.get("total_steps")
    header = ["---", "library_name: timm", "pipeline_tag: image-feature-extraction",
              "tags: [image-feature-extraction, timm, compressor, knowledge-distillation]",
              *([f"base_model: {hub_repo}"] if hub_repo else []), "---"]
    return "\n".join(header) + f"""
# {timm_arch} distilled with compressor

An image encoder ({dim}-d pooled features, no classifier) trained with `compress distill`.

| | |
|---|---|
| Architecture | `{timm_arch}`{f" (from `{arch}`)" if hub_repo else ""}, {dim}-d output |
| Input | {size}x{size} RGB, mean {list(meta["mean"])}, std {list(meta["std"])} |
| Teacher(s) | {teachers} |
| Recipe | `{meta.get("recipe", cfg.get("recipe"))}` |
| Training data | `{cfg.get("data")}` |
| Steps | {steps}{f" of {planned}" if planned and planned != steps else ""} |
| Student started from | {start} |
| Quality | {_headline(ev)} |

## Quality

{_quality(ev)}
## Latency

{_bench_table(run_dir)}
## Use

```python
import timm
model = timm.create_model("hf-hub:ORG/NAME", pretrained=True).eval()  # once uploaded (below)
# before uploading: timm.create_model("local-dir:PATH_TO_THIS_FOLDER", pretrained=True)
cfg = timm.data.resolve_data_config({{}}, model=model)
transform = timm.data.create_transform(**cfg)   # resize shorter side to {size} (bilinear), centre crop {size}
features = model(transform(img).unsqueeze(0))   # (1, {dim})
```

## Upload

```bash
hf auth login                          # once, with a write token
hf upload ORG/NAME PATH_TO_THIS_FOLDER  # creates the model repository ORG/NAME if needed
```
"""


def _check_rebuild(run_dir: Path, out: Path, size: int) -> FidelityRecord:
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


def export_timm(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, ExportEntry, Path]:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` into ``RUN/export/timm/``.

    Returns (folder, manifest entry, manifest path); the exporter wraps them in its ``ExportResult``.
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
    entry: ExportEntry = {"file": SUBDIR, "format": "timm", "precision": "fp32", "size_bytes": size,
             "size_mb": round(size / 1e6, 3), "architecture": config["architecture"], "fidelity": fidelity,
             "export_seconds": round(time.time() - started, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    manifest = record_export(base, SUBDIR, entry, student=meta)
    return out, entry, manifest
