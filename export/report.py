"""Bench results and their renderings: a rich table, JSON, Markdown and a latency-vs-batch plot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from compressor.utils.extras import require
from compressor.utils.io import atomic_write_text

SCHEMA_KEYS = ("backend", "format", "precision", "batch", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms",
               "throughput_ips", "size_mb", "params_m", "gflops", "cosine_vs_torch", "mode", "timing",
               "e2e_p50_ms", "e2e_p99_ms", "e2e_mean_ms", "e2e_throughput_ips")

# A row's ``timing``: what its two figures (``p50_ms``... compute only, ``e2e_*`` end to end) measured, as
# (compute label, end-to-end label): the words bench's table, the JSON, the manifest and the report use.
COMPUTE = "compute only: the input already on the device, the output left there"
END_TO_END = "end to end: host input → host output, every copy inside the timed call"
ONE = "compute = end to end: the runtime reads and writes host memory, one measurement under both names"
TIMINGS = {
    "host": (ONE, ONE),
    "device": (COMPUTE, END_TO_END),
    "e2e": (END_TO_END + " (compute alone not measured)",) * 2,  # a GPU runtime fed host arrays, in flight
}
E2E_SAME = "= compute"  # the end-to-end cell of a host row


@dataclass
class BenchRow:
    """One (backend, format, precision, batch) measurement; times in ms per batch, GFLOPs per image."""

    backend: str
    format: str
    precision: str  # fp32 | fp16 | int8
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    throughput_ips: float
    size_mb: float | None
    params_m: float | None
    gflops: float | None
    cosine_vs_torch: float | None
    cv: float = 0.0
    iters: int = 0
    file: str | None = None
    mode: str = "latency"  # or "throughput": several requests in flight, throughput_ips over the window
    timing: str = "host"  # a key of TIMINGS
    e2e_p50_ms: float | None = None  # end to end (host input → host output); a host row's are its compute figures
    e2e_p99_ms: float | None = None
    e2e_mean_ms: float | None = None
    e2e_throughput_ips: float | None = None
    settings: dict = field(default_factory=dict)  # how it was measured (warm-up taken, streams, threads, hint)

    def __post_init__(self) -> None:
        if self.timing in ("host", "e2e") and self.e2e_p50_ms is None:  # one measurement: both names
            self.e2e_p50_ms, self.e2e_p99_ms, self.e2e_mean_ms = self.p50_ms, self.p99_ms, self.mean_ms
            self.e2e_throughput_ips = self.throughput_ips

    @property
    def mode_label(self) -> str:
        if self.mode == "latency":
            return "latency"
        return f"throughput, {self.settings.get('requests_in_flight', '?')} in flight"

    def e2e_cell(self) -> str:
        """The end-to-end p50 as a table shows it: ``= compute`` where the two are one measurement."""
        if self.timing == "host":
            return E2E_SAME
        return _fmt(self.e2e_p50_ms, ".2f")


@dataclass
class BenchReport:
    env: dict
    results: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        timings = {k: {"compute": c, "end_to_end": e} for k, (c, e) in TIMINGS.items()}
        return {"env": self.env, "results": [asdict(r) for r in self.results], "notes": self.notes,
                "timings": timings}  # the legend of each row's ``timing``

    def to_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self):
        from rich.table import Table

        t = Table(title=f"{self.env['cpu']} · {self.env['threads']} threads"
                  + (f" · {self.env['gpu']['name']}" if self.env.get("gpu") else ""), caption=LEGEND)
        for col in ("backend", "format", "prec", "batch", "p50 ms compute", "p50 ms e2e", "p90 ms", "p99 ms",
                    "mean±std ms", "CV", "img/s", "MB", "Mparams", "GFLOPs", "cos vs torch", "mode"):
            t.add_column(col, justify="left" if col in ("backend", "format", "prec", "mode") else "right")
        for r in self.results:
            t.add_row(r.backend, r.format, r.precision, str(r.batch), f"{r.p50_ms:.2f}", r.e2e_cell(),
                      f"{r.p90_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.mean_ms:.2f}±{r.std_ms:.2f}", f"{r.cv:.2f}",
                      f"{r.throughput_ips:.1f}",
                      _fmt(r.size_mb, ".1f"), _fmt(r.params_m, ".2f"), _fmt(r.gflops, ".2f"),
                      _fmt(r.cosine_vs_torch, ".5f"), r.mode_label)
        return t

    def to_markdown(self) -> str:
        head = ("| backend | format | precision | batch | p50 ms (compute) | p50 ms (end to end) | p90 ms | p99 ms "
                "| mean ms | std ms | img/s | size MB | params M | GFLOPs | cosine vs torch | mode |")
        lines = [head, "|" + "---|" * 16]
        for r in self.results:
            lines.append(f"| {r.backend} | {r.format} | {r.precision} | {r.batch} | {r.p50_ms:.2f} "
                         f"| {r.e2e_cell()} | {r.p90_ms:.2f} | {r.p99_ms:.2f} | {r.mean_ms:.2f} | {r.std_ms:.2f} "
                         f"| {r.throughput_ips:.1f} "
                         f"| {_fmt(r.size_mb, '.1f')} | {_fmt(r.params_m, '.2f')} | {_fmt(r.gflops, '.2f')} "
                         f"| {_fmt(r.cosine_vs_torch, '.5f')} | {r.mode_label} |")
        env = self.env
        gpu = env["gpu"]["name"] if env.get("gpu") else "none"
        lines += ["", LEGEND, "",
                  f"CPU: {env['cpu']} ({env['cores']} usable cores, {env['threads']} threads; "
                  f"{', '.join(env['cpu_flags'])}); GPU: {gpu}",
                  "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path) -> None:
        """p50 latency vs batch size, one line per (backend, format)."""
        require("matplotlib", "--plot").use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        series: dict[str, list[tuple[int, float]]] = {}
        for r in self.results:
            if r.mode != "latency":  # a throughput row's latency is under load: not on this plot
                continue
            series.setdefault(f"{r.backend} {r.format}", []).append((r.batch, r.p50_ms))
        for label, pts in series.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xlabel("batch size")
        ax.set_ylabel("p50 latency per batch (ms)")
        ax.set_xscale("log", base=2)
        batches = sorted({r.batch for r in self.results})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{self.env['cpu']}, {self.env['threads']} threads", fontsize=9)
        fig.tight_layout()
        fig.savefig(str(path), dpi=120)
        plt.close(fig)


LEGEND = ("p50 ms compute: the input already on the device, the output left there; e2e: host input → host "
          f"output; '{E2E_SAME}': a CPU runtime, where the two are one measurement. img/s: batch / mean compute "
          "latency, or, in throughput mode, images per second with several requests in flight.")


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)
