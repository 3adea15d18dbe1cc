"""The report's figures, drawn with matplotlib (Agg, no display) as PNG bytes.

PNG rather than SVG: an SVG carries ``http://www.w3.org/...`` namespace strings, which would muddy the
"no external reference" check of the HTML; a PNG in a ``data:`` URI carries nothing but pixels.
"""

from __future__ import annotations

import io
from typing import Any

from compressor.report.collect import DeployRow
from compressor.utils.extras import require

_SKIP = {"step", "lr", "ips", "epoch"}


PLOTS_USE = "the report's plots"


def _figure(nrows: int, ncols: int = 1, height: float = 3.0):
    matplotlib = require("matplotlib", PLOTS_USE)
    matplotlib.use("Agg", force=True)  # no display here or on a server
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(8, height * nrows), squeeze=False)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def training_curves(metrics: list[dict[str, Any]]) -> bytes | None:
    """Each loss term, the learning rate and (when evaluated during training) kNN top-1, against step."""
    if not metrics:
        return None
    keys = sorted({k for row in metrics for k, v in row.items() if isinstance(v, (int, float))} - _SKIP)
    knn_keys = [k for k in keys if k.startswith("knn")]
    loss_keys = [k for k in keys if k not in knn_keys]
    panels = [("loss terms", loss_keys, False), ("learning rate", ["lr"], False)]
    if knn_keys:
        panels.append(("kNN top-1 (held-out subset)", knn_keys, True))
    fig, axes = _figure(len(panels))
    for ax, (title, ks, pct) in zip(axes[:, 0], panels, strict=True):
        for k in ks:
            pts = [(r["step"], r[k]) for r in metrics if isinstance(r.get(k), (int, float))]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, [100 * y for y in ys] if pct else ys, marker="." if len(xs) < 30 else None, label=k)
        ax.set_title(title)
        ax.set_xlabel("step")
        if pct:
            ax.set_ylabel("%")
        if len(ks) > 1:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _png(fig)


def latency_vs_accuracy(rows: list[DeployRow]) -> bytes | None:
    """p50 latency per image (smallest measured batch) against kNN top-1, one point per model and format."""
    fig = latency_accuracy_figure(rows)
    return None if fig is None else _png(fig)


def latency_accuracy_figure(rows: list[DeployRow]) -> Any:
    """The figure of :func:`latency_vs_accuracy` (a matplotlib Figure), or None without kNN figures."""
    pts = [r for r in rows if r.knn is not None and r.mode == "latency"]  # throughput p50s are under load
    if not pts:
        return None
    batch = min(r.batch for r in pts)
    pts = [r for r in pts if r.batch == batch]
    fig, axes = _figure(1, height=4.5)
    ax = axes[0, 0]
    markers = {"student": "o", "teacher": "s"}
    labelled = []
    for model in ("teacher", "student"):
        mine = [r for r in pts if r.model == model]
        if not mine:
            continue
        xs = [r.p50_ms / r.batch for r in mine]
        ys = [100 * (r.knn or 0.0) for r in mine]
        ax.scatter(xs, ys, marker=markers[model], s=60, label=model)
        labelled += [(f"{r.format} ({r.backend})", x, y) for r, x, y in zip(mine, xs, ys, strict=True)]
    ax.set_xscale("log")
    from matplotlib.ticker import LogLocator

    ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))  # 1, 2, 5, 10, ... ms
    ax.xaxis.set_major_formatter("{x:g}")  # 2, not 2×10⁰
    ax.xaxis.set_minor_formatter("{x:g}")
    ax.set_xlabel(f"p50 latency per image, ms (batch {batch}, log scale)")
    ax.set_ylabel("kNN top-1, %")
    ax.set_title("latency vs accuracy (upper left is better)")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _place_labels(fig, ax, labelled)
    return fig


def _place_labels(fig: Any, ax: Any, labelled: list[tuple[str, float, float]]) -> None:
    """Annotate each point, moving a label up or down in 11-pt steps until it overlaps no label placed
    before it (formats of one model share their accuracy, so their labels would otherwise stack)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for text, x, y in sorted(labelled, key=lambda p: (p[1], p[2])):
        for k in range(2 * len(labelled) + 1):
            dy = 4 + 11 * ((k + 1) // 2) * (1 if k % 2 else -1)  # 4, 15, -7, 26, -18, ...
            lead = {"arrowprops": {"arrowstyle": "-", "lw": 0.5, "color": "0.5"}} if k else {}  # moved: a leader line
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, dy), fontsize=8, **lead)
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text alone, not its leader line
            if not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            ann.remove()
        else:  # no free slot (more labels than the plot can hold): keep the first position
            placed.append(Text.get_window_extent(ax.annotate(text, (x, y), textcoords="offset points",
                                                             xytext=(5, 4), fontsize=8), renderer))
