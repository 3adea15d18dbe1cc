"""DDP under torchrun on CPU (gloo): real processes, real collectives.

Two processes with the global batch split between them must give the weights of one process
with the same global batch. The optimiser here is SGD on purpose: Adam's first steps move every
weight by about ``lr·sign(g)``, so a gradient component near zero flips sign on fp32 summation-order
noise (two half-batch sums versus one whole-batch sum) and the weights then differ by ~lr whatever
the engine does; SGD passes that noise through at its own size, so 1e-5 tests the engine. The learning rate is
kept moderate (0.01): at 0.05, six MV-MR steps amplify the same fp32 noise to ~8e-4 (the
variance hinge's ReLU and dCor's clamp have kinks), a property of the loss, not of DDP.
BatchNorm: the students keep theirs; under DDP they become global-batch BatchNorm
(``compressor.engine.distributed.GlobalBatchNorm`` on CPU), without which the test fails (each
rank would normalise by its half-batch statistics).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from compressor.data.loader import EpochBatchSampler
from compressor.models.students import build_student

# end to end (real processes, training runs): `make test-fast` leaves it out
pytestmark = pytest.mark.slow

RECIPES = {
    "simclr": [],
    "mvmr": ["--teacher", "timm:resnet10t", "--teacher-weights", "random", "--teacher-image-size", "24",
             "--set", "projector_dims=[32,32]"],
}


LR = {"simclr": 0.01, "mvmr": 0.002}  # mvmr at 0.01 (two passes) amplifies float-order noise to 8e-5


def _args(recipe: str, out: Path, *extra: str) -> list[str]:
    # 64 images / global batch 16 = 4 steps per epoch; 6 steps cross an epoch boundary.
    return ["distill", "--student", "resnet10t", "--recipe", recipe, "--data", "synthetic", "--max-images", "64",
            "--batch-size", "16", "--image-size", "24", "--max-steps", "6", "--checkpoint-every", "1",
            "--seed", "5", "--set", "optimizer=sgd", "--set", f"lr={LR[recipe]}", "--out", str(out), "--quiet",
            *RECIPES[recipe], *extra]


def _cmd(nproc: int, args: list[str]) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "compressor", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "compressor", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "student.safetensors"))


def _max_diff(a: Path, b: Path, *, running_stats: bool | None = None) -> float:
    """The largest difference over the saved tensors; ``running_stats`` True/False: BatchNorm's running
    statistics only / everything else (None: all)."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    keys = [k for k in wa if running_stats is None or ("running_" in k) == running_stats]
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in keys)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(recipe, nproc)``: one finished run per (recipe, nproc), shared by the tests."""
    done: dict[tuple[str, int], tuple[Path, str]] = {}

    def get(recipe: str, nproc: int) -> tuple[Path, str]:
        if (recipe, nproc) not in done:
            out = tmp_path_factory.mktemp(f"{recipe}{nproc}") / "run"
            res = subprocess.run(_cmd(nproc, _args(recipe, out)), env=_env(), capture_output=True, text=True,
                                 timeout=600)
            assert res.returncode == 0, res.stderr[-3000:]
            done[recipe, nproc] = (out, res.stdout)
        return done[recipe, nproc]

    return get


def test_ranks_split_each_global_batch_in_order() -> None:
    one = list(EpochBatchSampler(50, 12, seed=3, epoch=2, start=1))
    parts = [list(EpochBatchSampler(50, 12, seed=3, epoch=2, start=1, rank=r, world_size=3)) for r in range(3)]
    assert len(one) == 3 and all(len(p) == len(one) for p in parts)
    for b, batch in enumerate(one):
        assert [i for p in parts for i in p[b]] == batch


def test_two_gloo_processes_give_the_weights_of_one(runs) -> None:
    recipe = "mvmr"
    one, _ = runs(recipe, 1)
    two, stdout = runs(recipe, 2)
    assert stdout.count("student written") == 1  # one run, not two racing on the same directory
    assert _max_diff(one, two, running_stats=False) <= 1e-5
    # SyncBatchNorm's running variance comes from all-reduced sums of squares, one process's from its own
    # kernel: they round differently (7e-5 on variances of ~1 measured on an AVX2-only CPU, 1e-7 on an
    # AVX-512 one). A wrong split of the batch would move them by the size of their update (~0.5 here).
    assert _max_diff(one, two, running_stats=True) <= 2e-4
    # and both trained: the weights moved from the initial ones (the engine seeds them with --seed)
    stem = json.loads((two / "student.json").read_text()).get("stem", "imagenet")
    torch.manual_seed(5)
    init = build_student("resnet10t", 24, stem=stem).backbone.state_dict()
    trained = _weights(two)
    weights = [k for k in trained if trained[k].is_floating_point() and "running_" not in k]
    assert max((trained[k] - init[k]).abs().max().item() for k in weights) > 1e-3


def test_two_gloo_processes_take_the_steps_of_one_from_the_same_state(tmp_path: Path) -> None:
    """SimCLR, 1 vs 2 processes, both resumed from one 1-process checkpoint (step 3) to step 6 (across the epoch
    boundary at 4): the same weights to 1e-5.

    From random initial weights the two runs drift apart instead (4e-4 after 6 steps, at lr 0.01 and 0.002
    alike): a global batch summed in two halves rounds differently in the last bit, and the first steps
    after a random init amplify that (the loss agrees to 3e-7 at steps 2-3, then 3e-5 at step 4). From a
    shared trained state the same 3 steps agree to 2e-7; mvmr's uninterrupted run above agrees to 1e-7.
    """
    start = tmp_path / "start"
    res = subprocess.run(_cmd(1, [*_args("simclr", start), "--max-steps", "3"]), env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ends = {}
    for nproc in (1, 2):
        out = tmp_path / f"p{nproc}"
        shutil.copytree(start, out)
        res = subprocess.run(_cmd(nproc, _args("simclr", out, "--resume")), env=_env(), capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        ends[nproc] = out
    assert json.loads((ends[2] / "student.json").read_text())["steps"] == 6
    assert _max_diff(ends[1], ends[2]) <= 1e-5
    moved = _max_diff(start, ends[2])  # and the three steps did move the weights
    assert moved > 1e-4, moved


def test_killed_two_process_run_resumes_to_the_same_weights(runs, tmp_path: Path) -> None:
    ref, _ = runs("simclr", 2)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(2, _args("simclr", killed)), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    t0 = time.time()
    while not (killed / "checkpoints" / "step_0000003.pt").exists():  # mid-epoch 0
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < 300
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers at once
    proc.wait()
    assert not (killed / "student.safetensors").exists()
    res = subprocess.run(_cmd(2, _args("simclr", killed, "--resume")), env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _max_diff(ref, killed) <= 1e-6


def test_sigterm_stops_every_rank_with_a_checkpoint_and_resumes_to_the_same_weights(runs, tmp_path: Path) -> None:
    """SLURM's scancel: SIGTERM to the launcher and both workers; the ranks agree on a step, checkpoint, stop."""
    ref, _ = runs("simclr", 2)
    stopped = tmp_path / "stopped"
    # one checkpoint every 100 steps: any checkpoint before the end is the one SIGTERM wrote
    args = _args("simclr", stopped, "--checkpoint-every", "100", "--log-every", "1")
    proc = subprocess.Popen(_cmd(2, args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    t0 = time.time()
    metrics = stopped / "metrics.jsonl"
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < 300
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode != 0, err[-3000:]
    assert "interrupted (SIGTERM): checkpoint saved at step" in err and "--resume" in err, err[-3000:]
    saved = sorted((stopped / "checkpoints").glob("step_*.pt"))
    assert saved and int(saved[-1].stem.split("_")[1]) < 6, saved
    assert not (stopped / "student.safetensors").exists()
    res = subprocess.run(_cmd(2, [*args, "--resume"]), env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _max_diff(ref, stopped) <= 1e-6


# A worker that runs the real `compress` and, on rank 0 only, sends itself SIGTERM inside the stop agreement's
# all-reduce, after the ranks have exchanged their flags: the signal lands where no agreement can see it.
_LATE_SIGNAL = """
import inspect, os, signal, sys
from compressor.engine import distributed
real, sent = distributed.any_rank, []
def any_rank(flag, device):
    agreed = real(flag, device)
    if os.environ["RANK"] == "0" and not sent and inspect.stack()[1].function == "_loop" and agreed is False:
        sent.append(1)
        os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler here, before this call returns
    return agreed
distributed.any_rank = any_rank
from compressor.cli.main import main
main(sys.argv[1:])
"""


def test_a_signal_landing_after_the_ranks_agreed_stops_both_at_the_next_agreement(runs, tmp_path: Path) -> None:
    """Rank 0 is signalled inside the agreement, after the exchange: it must neither stop alone (the other rank
    would run the next step's collectives against its checkpoint's: gloo's size mismatch) nor lose the request."""
    ref, _ = runs("simclr", 2)
    stopped = tmp_path / "stopped"
    script = tmp_path / "late_signal.py"
    script.write_text(_LATE_SIGNAL)
    args = _args("simclr", stopped, "--checkpoint-every", "100", "--log-every", "1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), *args]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode != 0 and "interrupted (SIGTERM): checkpoint saved at step 2" in res.stderr, \
        res.stderr[-3000:]
    assert "interrupted (SIGINT): checkpoint saved at step 2" in res.stderr  # rank 1 stopped by the agreement
    assert [int(p.stem.split("_")[1]) for p in (stopped / "checkpoints").glob("step_*.pt")] == [2]
    res = subprocess.run(_cmd(2, [*args, "--resume"]), env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _max_diff(ref, stopped) <= 1e-6
