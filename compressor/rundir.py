"""The run directory: the one place that knows its file names and how each is read and written.

Layout (DESIGN.md, "run directory")::

    RUN/config.yaml          the resolved TrainConfig (what `--resume` and eval/export/bench read back)
    RUN/run.json             recipe, teachers, device, precision, step counts, versions
    RUN/metrics.jsonl        one JSON object per logged step; RUN/tb/ the same as TensorBoard events
    RUN/trackers.json        the W&B / MLflow run ids of ``--logger``, so a resume continues the same runs;
                             RUN/wandb/ W&B's offline runs, RUN/mlruns/ MLflow's file store (the defaults)
    RUN/student.safetensors  + student.json (peer.* for peer recipes): the saved encoders
    RUN/checkpoints/         step_NNNNNNN.pt, the newest few
    RUN/export/              exported models and manifest.json (one entry per exported file)
    RUN/eval.json            kNN (and linear-probe) top-1 of the student; ``teacher``: the teacher's, same
                             split; ``quality``: an optional ``{label: kNN top-1}`` table of comparable models
    RUN/bench.json           ``compress bench`` of the student and its exports; bench-teacher.json the teacher's
    RUN/pipeline.json        per stage of ``compress run``, the hash of its configuration and inputs
    RUN/report.md            + report.html and report/*.png: the report

Every reader goes through :meth:`RunDir._read`, so a missing or corrupt file gives one wording:
``<path> is missing|corrupt (<why>); <what to do>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from compressor.errors import CompressorError
from compressor.utils.io import atomic_write_text, check_regular_file
from compressor.utils.yamlfile import MAX_BYTES, load_yaml_text

CONFIG = "config.yaml"
RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
TENSORBOARD = "tb"
TRACKERS = "trackers.json"
WANDB = "wandb"  # W&B's own folder name under its dir= (RUN/wandb/offline-run-*)
MLRUNS = "mlruns"
STUDENT = "student"  # the saved encoder's name: student.safetensors + student.json
CHECKPOINTS = "checkpoints"
EXPORT = "export"
MANIFEST = "manifest.json"  # inside export/
EVAL = "eval.json"
BENCH = "bench.json"
TEACHER_BENCH = "bench-teacher.json"
PIPELINE = "pipeline.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_ASSETS = "report"
RERUN = "re-run `compress distill` into a new --out"


class RunDir:
    """A run directory on disk (it need not exist yet: training creates it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # -- layout ---------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def info_path(self) -> Path:
        return self.path / RUN_INFO

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def trackers_path(self) -> Path:
        """``trackers.json``: the experiment trackers' run ids (W&B, MLflow) of this run."""
        return self.path / TRACKERS

    @property
    def wandb_dir(self) -> Path:
        """``wandb/``: W&B's offline runs (``wandb.init(dir=RUN)`` writes there)."""
        return self.path / WANDB

    @property
    def mlflow_dir(self) -> Path:
        """``mlruns/``: MLflow's file store when ``MLFLOW_TRACKING_URI`` is not set."""
        return self.path / MLRUNS

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT

    @property
    def manifest_path(self) -> Path:
        return self.export_dir / MANIFEST

    @property
    def eval_path(self) -> Path:
        """``eval.json``: what ``compress eval`` measured last (kNN, linear probe, the data)."""
        return self.path / EVAL

    @property
    def bench_path(self) -> Path:
        return self.path / BENCH

    @property
    def teacher_bench_path(self) -> Path:
        return self.path / TEACHER_BENCH

    @property
    def pipeline_path(self) -> Path:
        return self.path / PIPELINE

    @property
    def report_paths(self) -> tuple[Path, Path]:
        """``(report.md, report.html)``."""
        return self.path / REPORT_MD, self.path / REPORT_HTML

    @property
    def report_assets_dir(self) -> Path:
        return self.path / REPORT_ASSETS

    def weights_path(self, name: str = STUDENT) -> Path:
        return self.path / f"{name}.safetensors"

    def meta_path(self, name: str = STUDENT) -> Path:
        return self.path / f"{name}.json"

    def is_finished(self, name: str = STUDENT) -> bool:
        """Whether training wrote the saved encoder ``name`` (what eval, export and bench read)."""
        return self.meta_path(name).is_file()

    # -- reading --------------------------------------------------------------------------------
    def _read(self, path: Path, parse: Callable[[str], Any], fix: str) -> Any:
        if not self.path.is_dir():
            raise CompressorError(f"run directory {str(self.path)!r} does not exist; pass the --out of a "
                                  "finished `compress distill`")
        if not path.exists() and not path.is_symlink():
            raise CompressorError(f"{path} is missing; {fix}")
        check_regular_file(path, "run file", max_bytes=MAX_BYTES, allow_empty=True)  # no FIFO, no /dev/zero
        try:
            return parse(path.read_bytes().decode("utf-8"))
        except CompressorError as err:  # the safe YAML reader's own wording, folded into the one wording
            detail = str(err).removeprefix(f"{path} ").removeprefix("is ")
            raise CompressorError(f"{path} is corrupt ({detail}); {fix}") from None
        except (ValueError, yaml.YAMLError, UnicodeDecodeError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CompressorError(f"{path} is corrupt ({detail}); {fix}") from None

    def read_config(self, fix: str = RERUN) -> dict[str, Any]:
        """``config.yaml`` as a mapping (the resolved configuration training recorded)."""
        raw = self._read(self.config_path, lambda text: load_yaml_text(text, str(self.config_path)), fix)
        if not isinstance(raw, dict):
            raise CompressorError(f"{self.config_path} is corrupt (not a mapping); {fix}")
        return raw

    def read_meta(self, name: str = STUDENT) -> dict[str, Any]:
        """``<name>.json``, the saved encoder's architecture and input spec."""
        fix = (f"the run has not finished (resume it with `compress distill --resume --out {self.path}`) "
               "or is not a compressor run")
        if self.meta_path(name).is_file():
            fix = RERUN
        raw = self._read(self.meta_path(name), json.loads, fix)
        if not isinstance(raw, dict):
            raise CompressorError(f"{self.meta_path(name)} is corrupt (not a JSON object); {RERUN}")
        return raw

    def data(self, fix: str = "pass --data SPEC") -> tuple[str | None, str | None]:
        """The data SPEC and data root the run was trained on, or ``(None, None)`` without a ``config.yaml``."""
        if not self.config_path.is_file():
            return None, None
        cfg = self.read_config(fix)
        data = cfg.get("data")
        root = cfg.get("data_root")
        return (str(data) if data else None), (str(root) if root else None)

    # -- writing --------------------------------------------------------------------------------
    def write_config(self, values: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(values, sort_keys=False))

    def write_info(self, info: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.info_path, json.dumps(info, indent=2) + "\n")

    def write_meta(self, meta: dict[str, Any], name: str = STUDENT) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.meta_path(name), json.dumps(meta, indent=2) + "\n")


# -- where a command writes ------------------------------------------------------------------------------
def output_path_problem(path: str | Path, *, folder: bool = True) -> str | None:
    """Why ``path`` cannot become an output folder (``folder``) or file, in a few words; ``None`` if it can.

    Nothing is created: the first part of the path that exists decides. A file in the way (``--out x/run``
    where ``x`` is a file) is the usual case; a folder where a file should go and a folder that cannot be
    written into are the others.
    """
    p = Path(path)
    if not folder and p.is_dir():
        return "it is a folder; pass a file name"
    start = p if folder else p.parent
    existing = next((a for a in (start, *start.parents) if a.exists() or a.is_symlink()), None)
    if existing is None:  # a relative path whose parents all fail to exist: '.' does, so only on odd paths
        return None
    if not existing.is_dir():
        what = "a file" if existing.is_file() else "not a folder (a broken link or a special file)"
        if existing == p:
            return f"it is {what}, not a folder; pass a folder (new or existing)"
        return f"{existing} is {what}, so nothing can be created below it; choose another path"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to write in {existing}"
    return None


def check_output_path(path: str | Path | None, option: str = "--out", *, folder: bool = True) -> None:
    """One line naming ``option``, ``path`` and the problem when ``path`` cannot be written (see above).

    Commands call it on each output option before any work, so a typo fails in a second, not after an hour of
    training or benchmarking; ``None`` (option not given) passes.
    """
    if path is None:
        return
    problem = output_path_problem(path, folder=folder)
    if problem:
        raise CompressorError(f"{option} {str(path)!r}: {problem}")
