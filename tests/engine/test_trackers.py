"""`--logger wandb,mlflow`: a real training run logs into W&B (offline) and MLflow (file store), read back with
their own readers (W&B's `wandb leet inspect` on the offline run's .wandb log, MLflow's client on RUN/mlruns) and
compared with metrics.jsonl; a resume continues the same tracker runs without a step twice; `compress run` adds
its figures to the same runs; a missing extra or an unknown name is one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("wandb", reason="the wandb extra is not installed (pip install 'compressor[wandb]')")
pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'compressor[mlflow]')")

TINY = ["--recipe", "simclr", "--student", "resnet10t", "--data", "synthetic", "--image-size", "32",
        "--batch-size", "8", "--max-images", "32", "--set", "projector_dims=[16,16]", "--log-every", "1",
        "--checkpoint-every", "2", "--keep-checkpoints", "4", "--quiet"]


@pytest.fixture(autouse=True)
def _offline_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults under test: no W&B mode, no MLflow URI or experiment set by the environment."""
    for name in ("WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")


# -- the independent readers ------------------------------------------------------------------------------------
def metrics_rows(run: Path) -> dict[int, dict[str, float]]:
    """metrics.jsonl merged by step (a kNN row shares its step with the training row)."""
    rows: dict[int, dict[str, float]] = defaultdict(dict)
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows[row.pop("step")].update(row)
    return dict(rows)


def wandb_records(session: Path, *extra: str) -> list[dict]:
    """W&B's own reader of an offline run's transaction log (`wandb leet inspect --json`)."""
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", *extra, str(session)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


def wandb_sessions(run: Path) -> list[Path]:
    return sorted((run / "wandb").glob("offline-run-*"))


def wandb_history(run: Path) -> list[tuple[int, dict[str, float]]]:
    """Every history row of every session of the run, in order: (step, {train/...: value})."""
    rows = []
    for session in wandb_sessions(run):
        for rec in wandb_records(session):
            if rec["type"] == "history":
                item = {k: v for k, v in rec["history"]["item"].items() if not k.startswith("_")}
                rows.append((int(rec["history"]["step"]["num"]), item))
    return rows


def mlflow_client(run: Path):
    from mlflow.tracking import MlflowClient

    ids = json.loads((run / "trackers.json").read_text())["mlflow"]
    assert ids["store"] == "RUN/mlruns"  # the file store inside the run, wherever the run directory is
    return MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri()), ids["run_id"]


def mlflow_history(run: Path) -> dict[str, list[tuple[int, float]]]:
    client, run_id = mlflow_client(run)
    keys = client.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


# -- training -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 steps, a kNN row beside the training row of step 4, logged to W&B and MLflow."""
    from compressor.cli.main import main

    run = tmp_path_factory.mktemp("trackers") / "run"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
            mp.delenv(name, raising=False)
        mp.setenv("WANDB_SILENT", "true")
        try:
            main(["distill", *TINY, "--max-steps", "4", "--eval-every", "4", "--logger", "wandb,mlflow",
                  "--out", str(run)])
        except SystemExit as exc:
            assert not exc.code, exc.code
    return run


def test_wandb_and_mlflow_hold_exactly_the_rows_of_metrics_jsonl(logged_run: Path) -> None:
    expected = metrics_rows(logged_run)
    assert sorted(expected) == [1, 2, 3, 4] and "knn_top1" in expected[4] and "loss" in expected[4]
    prefixed = {step: {f"train/{k}": v for k, v in row.items()} for step, row in expected.items()}

    sessions = wandb_sessions(logged_run)
    assert len(sessions) == 1  # offline: nothing left the machine; `wandb sync` uploads this folder
    assert dict(wandb_history(logged_run)) == prefixed

    mlflow = mlflow_history(logged_run)
    assert set(mlflow) == {k for row in prefixed.values() for k in row}
    for key, points in mlflow.items():
        assert points == [(step, row[key]) for step, row in sorted(prefixed.items()) if key in row], key


def test_config_and_run_json_are_the_runs_parameters(logged_run: Path) -> None:
    import yaml

    config = yaml.safe_load((logged_run / "config.yaml").read_text())
    info = json.loads((logged_run / "run.json").read_text())
    assert config["logger"] == "wandb,mlflow"

    summary = json.loads(subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(wandb_sessions(logged_run)[0])],
        capture_output=True, text=True, check=True, timeout=120).stdout)
    assert summary["state"] == "finished" and summary["project"] == "compressor"
    wb = summary["config"]
    assert {k: wb[k] for k in ("student", "recipe", "batch_size", "max_steps", "image_size")} == \
        {k: config[k] for k in ("student", "recipe", "batch_size", "max_steps", "image_size")}
    assert wb["recipe_config"]["projector_dims"] == [16, 16] and wb["run"]["device"] == info["device"]

    client, run_id = mlflow_client(logged_run)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["batch_size"] == "8" and params["student"] == "resnet10t" and params["max_steps"] == "4"
    assert params["recipe_config.projector_dims"] == "[16, 16]"
    assert params["run.recipe"] == info["recipe"] and params["run.total_steps"] == str(info["total_steps"])


def test_resume_continues_the_same_runs_with_each_step_once(logged_run: Path, tmp_path: Path, cli) -> None:
    run = tmp_path / "run"
    shutil.copytree(logged_run, run)
    ids = json.loads((run / "trackers.json").read_text())
    first = metrics_rows(run)
    # As after a crash between steps 4 and their checkpoint: resume from step 2; steps 3 and 4 are trained again.
    # (--eval-every 0 only saves time: the kNN monitor reads no random numbers and leaves the weights alone)
    (run / "checkpoints" / "step_0000004.pt").unlink()
    code, _, err = cli("distill", "--resume", "--out", run, "--eval-every", "0", "--quiet")
    assert code == 0, err
    # ... then a longer run on top of the finished one: step 5 is new
    code, _, err = cli("distill", "--resume", "--out", run, "--max-steps", "5", "--eval-every", "0", "--quiet")
    assert code == 0, err
    assert json.loads((run / "trackers.json").read_text()) == ids  # the same W&B and MLflow runs

    rows = metrics_rows(run)
    assert sorted(rows) == [1, 2, 3, 4, 5]
    for step in (3, 4):  # the resume is bit-exact: the tracker's first-attempt rows hold the same losses
        assert rows[step]["loss"] == first[step]["loss"], step

    history = wandb_history(run)
    sessions = wandb_sessions(run)  # one folder per session, all of the one W&B run
    assert len(sessions) == 3 and {s.name.rsplit("-", 1)[1] for s in sessions} == {ids["wandb"]["id"]}
    steps = [step for step, _ in history]
    assert sorted(steps) == [1, 2, 3, 4, 5] and len(set(steps)) == len(steps)  # each step once
    wb = dict(history)
    assert wb[5] == {f"train/{k}": v for k, v in rows[5].items()}
    assert all(wb[s]["train/loss"] == rows[s]["loss"] for s in rows)

    mlflow = mlflow_history(run)
    assert [s for s, _ in mlflow["train/loss"]] == [1, 2, 3, 4, 5]  # each step once
    assert mlflow["train/loss"] == [(s, rows[s]["loss"]) for s in sorted(rows)]
    assert mlflow["train/lr"][-1] == (5, rows[5]["lr"]) and mlflow["train/ips"][-1] == (5, rows[5]["ips"])
    client, run_id = mlflow_client(run)
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


# -- compress run ----------------------------------------------------------------------------------------------
def test_compress_run_logs_its_eval_and_export_figures_into_the_same_runs(tmp_path: Path) -> None:
    from compressor.pipeline import run_pipeline

    config = {"student": "resnet10t", "recipe": "simclr", "recipe_config": {"projector_dims": [16, 16]},
              "data": "synthetic", "image_size": 32, "batch_size": 8, "max_images": 32, "max_steps": 2,
              "log_every": 1, "logger": "mlflow,wandb", "out": str(tmp_path / "run"),
              "pipeline": {"export": ["onnx"]}}
    result = run_pipeline(config, quick=True, progress=False, only=["distill", "eval", "export"])
    assert result.ran == ["distill", "eval", "export"]
    run = result.run_dir
    evaluated = json.loads((run / "eval.json").read_text())
    fidelity = json.loads((run / "export" / "manifest.json").read_text())["exports"]["model.onnx"]["fidelity"]

    mlflow = mlflow_history(run)  # one MLflow run: the training curve and the figures
    assert [s for s, _ in mlflow["train/loss"]] == [1, 2]
    assert mlflow["eval/knn_top1"] == [(2, evaluated["knn_top1"])]
    assert mlflow["export/onnx/mean_cosine"] == [(2, fidelity["mean_cosine"])]

    sessions = wandb_sessions(run)  # training, then one session per stage, all of the one W&B run
    assert len(sessions) == 3 and len({s.name.rsplit("-", 1)[1] for s in sessions}) == 1
    summary = {}
    for session in sessions:
        for rec in wandb_records(session):
            if rec["type"] == "summary":
                summary.update(rec["summary"].get("update", {}))
    assert summary["eval/knn_top1"] == evaluated["knn_top1"]
    assert summary["export/onnx/mean_cosine"] == fidelity["mean_cosine"]

    again = run_pipeline(config, quick=True, progress=False, only=["distill", "eval", "export"])
    assert again.ran == [] and len(wandb_sessions(run)) == 3  # current stages log nothing twice
    assert mlflow_history(run)["eval/knn_top1"] == [(2, evaluated["knn_top1"])]


# -- bad input -----------------------------------------------------------------------------------------------------
def test_a_missing_tracker_is_one_line_naming_its_extra(tmp_path: Path) -> None:
    # a fresh interpreter in which neither tracker's module can be imported, as after `pip install compressor`
    code = ("import sys\nsys.modules['wandb'] = sys.modules['mlflow'] = None\n"
            "from compressor.cli.main import main\n"
            "for m in ('wandb', 'mlflow'):\n"
            "    try:\n"
            "        main(['distill', '--student', 'resnet10t', '--data', 'synthetic', '--max-steps', '1',\n"
            f"              '--logger', 'tensorboard,' + m, '--out', {str(tmp_path / 'run')!r}])\n"
            "    except SystemExit as exit:\n"
            "        print('exit', exit.code, file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --logger wandb needs wandb, which is not installed: pip install 'compressor[wandb]'", "exit 2",
        "error: --logger mlflow needs mlflow-skinny, which is not installed: pip install 'compressor[mlflow]'",
        "exit 2"], r.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was built or written


@pytest.mark.parametrize(("value", "message"), [
    ("wandbb", "unknown --logger 'wandbb'; did you mean 'wandb'? (choose from tensorboard, wandb, mlflow, "
               "comma-separated, or none)"),
    ("none,mlflow", "--logger none means no tracker; it cannot be combined with mlflow"),
])
def test_a_bad_logger_name_is_one_line(value: str, message: str, cli, tmp_path: Path) -> None:
    code, _, err = cli("distill", *TINY, "--max-steps", "1", "--logger", value, "--out", tmp_path / "run")
    assert code == 2 and err.strip() == f"error: {message}", err


def test_logger_none_writes_metrics_jsonl_only(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = cli("distill", *TINY, "--max-steps", "1", "--logger", "none", "--out", run)
    assert code == 0, err
    assert sorted(metrics_rows(run)) == [1]
    assert not any((run / name).exists() for name in ("tb", "wandb", "mlruns", "trackers.json"))
