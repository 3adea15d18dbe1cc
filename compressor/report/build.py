"""``report.md`` and a self-contained ``report.html`` (plots inlined as base64 PNG, no network at all).

The HTML carries one small inline script that records, on ``<body>``, how many images decoded and how
many network resources the page loaded, so a headless browser can check it (``scripts/check_report_html.py``).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import yaml

from compressor.engine.preset import describe_preset
from compressor.eval.linear import describe_probe
from compressor.report.collect import DeployRow, ReportData, collect, headline
from compressor.report.plots import PLOTS_USE, latency_vs_accuracy, training_curves
from compressor.rundir import REPORT_ASSETS, RunDir
from compressor.utils.extras import available, missing_message
from compressor.utils.io import atomic_write, atomic_write_text

Table = tuple[list[str], list[list[str]]]

_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem}
td{text-align:right}td:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%}
.headline{font-size:1.4rem;font-weight:600;padding:.75rem 1rem;background:#eef6ee;border-left:.3rem solid #4a4}
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto;font-size:.8rem}.note{color:#a60}"""

# Records what rendered, for the headless-browser check: decoded images and resources fetched.
_PROBE = """window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
var b=document.body;b.setAttribute('data-images-total',im.length);b.setAttribute('data-images-ok',ok);
b.setAttribute('data-resources',performance.getEntriesByType('resource').length);});"""


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def quality_table(data: ReportData) -> Table | None:
    """kNN top-1 per model; a linear column where eval.json has linear-probe figures, each with its chosen C."""
    q: dict[str, Any] = dict(data.evaluation.get("quality") or {})
    linear: dict[str, str] = {}
    if not q:
        student = f"student ({data.student.get('arch')}, {data.config.get('recipe', '?')})"
        for label, ev in (("teacher", data.evaluation.get("teacher")), (student, data.evaluation)):
            if ev and ev.get("knn_top1") is not None:
                q[label] = ev["knn_top1"]
                if ev.get("linear_top1") is not None:
                    c = (ev.get("probe") or {}).get("C")
                    linear[label] = _pct(ev["linear_top1"]) + (f" (C={c:g})" if c is not None else "")
    if not q:
        return None
    if not linear:
        return ["model", "kNN top-1"], [[k, _pct(v)] for k, v in q.items()]
    return ["model", "kNN top-1", "linear top-1"], [[k, _pct(v), linear.get(k, "-")] for k, v in q.items()]


def quality_caption(data: ReportData) -> str:
    """What the quality table's figures are; the linear probe named from eval.json's record of it."""
    text = "Weighted kNN top-1 (cosine, k=20, T=0.07) on frozen embeddings."
    if data.evaluation.get("linear_top1") is not None and not data.evaluation.get("quality"):
        text += f" Linear top-1: {describe_probe(data.evaluation.get('probe'))}."
    return text


def deploy_table(data: ReportData) -> Table | None:
    if not data.deploy:
        return None
    head = ["model", "backend", "format", "precision", "batch", "mode", "size MB", "p50 ms compute",
            "p50 ms end to end", "p99 ms", "img/s", "cosine vs fp32", "kNN delta"]
    body = [[r.model, r.backend, r.format, r.precision, str(r.batch), _mode_cell(r), _num(r.size_mb, ".1f"),
             f"{r.p50_ms:.2f}", "= compute" if r.timing == "host" else _num(r.e2e_p50_ms, ".2f"),
             f"{r.p99_ms:.2f}", f"{r.img_s:.1f}", _num(r.cosine, ".5f"),
             _delta_cell(r)] for r in data.deploy]
    return head, body


# Said under the deployment table: what its two latency columns measured (export/report.py: TIMINGS).
DEPLOY_LEGEND = ("p50 ms compute: the input already on the device, the output left there; end to end: host "
                 "input → host output, every copy timed; '= compute': a CPU runtime, where the two are one "
                 "measurement. Throughput rows: several requests in flight, img/s measured over the window.")


def _mode_cell(r: DeployRow) -> str:
    return "latency" if r.mode == "latency" else f"throughput ({r.in_flight or '?'} in flight)"


def _delta_cell(r: DeployRow) -> str:
    """The export check's kNN delta, with its noise: ``-0.78 pt (± 1.25, within noise)``."""
    if r.knn_delta is None:
        return "-"
    cell = f"{100 * r.knn_delta:+.2f} pt"
    if r.knn_noise is not None and r.precision != "fp32":
        cell += f" (± {100 * r.knn_noise:.2f}{', within noise' if r.within_noise else ''})"
    elif r.within_noise:
        cell += " (noise unknown: re-export to measure it; not plotted as a gain)"
    return cell


def environment_table(data: ReportData) -> Table:
    env, run = data.env, data.run
    versions = env.get("versions") or {}
    rows = [["training device", f"{run.get('device', '?')} ({run.get('precision', '?')})"],
            ["benchmark CPU", f"{env.get('cpu', '?')} ({env.get('cores', '?')} cores, "
                              f"{env.get('threads', '?')} threads)"],
            ["CPU flags", ", ".join(env.get("cpu_flags") or []) or "-"],
            ["GPU", (env.get("gpu") or {}).get("name", "none")],
            ["OS", env.get("os", "?")]]
    rows += [[k, v] for k, v in versions.items()]
    return ["", "value"], rows


def config_table(data: ReportData) -> Table:
    c, s = data.config, data.student
    teacher_info = (data.run.get("teachers") or [{}])
    rows = [["recipe", str(c.get("recipe", "?"))], ["student", f"{s.get('arch')} at {s.get('image_size')} px, "
                                                                f"embedding {s.get('embed_dim')}"],
            ["teacher", ", ".join(str(t.get("name", "?")) + (" (random weights)" if t.get("random") else "")
                                  for t in teacher_info) or "none"],
            ["data", str(c.get("data", "?"))], ["steps", str(data.run.get("total_steps", s.get("steps", "?")))],
            ["batch size", str(c.get("batch_size", "?"))], ["seed", str(c.get("seed", "?"))]]
    if data.run.get("preset"):  # what the short-run preset changed, paper value → value used (run.json)
        rows.append(["preset", describe_preset(data.run["preset"])])
    return ["", "value"], rows


def _md_table(t: Table) -> str:
    head, body = t
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _html_table(t: Table) -> str:
    head, body = t
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>\n"


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` (with ``report/*.png``) and ``report.html`` for ``run_dir``; returns both paths."""
    data = collect(run_dir)
    out = Path(out_dir) if out_dir else data.run_dir
    plots: dict[str, tuple[str, bytes | None]] = {}
    if available("matplotlib"):
        plots = {"training curves": ("training_curves.png", training_curves(data.metrics)),
                 "latency vs accuracy": ("latency_vs_accuracy.png", latency_vs_accuracy(data.deploy))}
    else:  # the tables carry every figure; the plots are an extra
        data.notes.append(f"no plots: {missing_message('matplotlib', PLOTS_USE)}")
    plots_ok: dict[str, tuple[str, bytes]] = {k: (n, b) for k, (n, b) in plots.items() if b is not None}
    for name, png in plots_ok.values():
        def write(p: Path, b: bytes = png) -> None:
            p.write_bytes(b)

        atomic_write(RunDir(out).report_assets_dir / name, write)
    head = headline(data)
    title = f"{data.student.get('arch')} distilled with {data.config.get('recipe', '?')}: {data.run_dir.name}"
    sections: list[tuple[str, Table | None, str | None, str]] = [
        ("Configuration", config_table(data), None, ""),
        ("Training curves", None, "training curves", "Each logged loss term and the learning rate by step"
         + ("; kNN top-1 on a small held-out set where the run evaluated during training (--eval-every)."
            if any(k.startswith("knn") for r in data.metrics for k in r) else ".")),
        ("Quality", quality_table(data), None, quality_caption(data)),
        ("Deployment", deploy_table(data), None,
         "Latency per batch on this machine; cosine: mean cosine similarity of the embeddings with the PyTorch "
         "fp32 model's on the same images; kNN delta: the export's own kNN check (int8 vs fp32). "
         + DEPLOY_LEGEND),
        ("Latency vs accuracy", None, "latency vs accuracy",
         "kNN of an export = the model's kNN + its kNN delta (measured by the export's check)."),
        ("Environment", environment_table(data), None, ""),
    ]
    md = [f"# {title}\n", f"**{head.text()}**\n"]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p class='headline'>{html.escape(head.text())}</p>"]
    for name, table, plot, caption in sections:
        if table is None and (plot is None or plot not in plots_ok):
            continue
        md.append(f"## {name}\n")
        body.append(f"<h2>{html.escape(name)}</h2>")
        if caption:
            md.append(caption + "\n")
            body.append(f"<p>{html.escape(caption)}</p>")
        if table is not None:
            md.append(_md_table(table))
            body.append(_html_table(table))
        if plot is not None and plot in plots_ok:
            fname, png = plots_ok[plot]
            md.append(f"![{plot}]({REPORT_ASSETS}/{fname})\n")
            b64 = base64.b64encode(png).decode()
            body.append(f"<img alt='{html.escape(plot)}' src='data:image/png;base64,{b64}'>")
    md.append("## Resolved configuration\n")
    cfg_text = yaml.safe_dump(data.config, sort_keys=False)
    md.append(f"```yaml\n{cfg_text}```\n")
    body.append(f"<h2>Resolved configuration</h2><pre>{html.escape(cfg_text)}</pre>")
    if data.notes:
        md.append("## Notes\n" + "".join(f"- {n}\n" for n in data.notes))
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li class='note'>{html.escape(n)}</li>" for n in data.notes)
                    + "</ul>")
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style><script>{_PROBE}</script></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")
    md_path, html_path = RunDir(out).report_paths
    atomic_write_text(md_path, "\n".join(md))
    atomic_write_text(html_path, page)
    return md_path, html_path
