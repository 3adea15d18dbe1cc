"""The catalogue of bad inputs: each is one line on stderr (no traceback), a non-zero exit, and names the fix.

Further entries live beside the code they exercise: teacher checkpoints (tests/models), export and
bench (tests/export), data folders (tests/data).
"""

from __future__ import annotations

import errno
import pickle
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

BASE = ["--student", "resnet10t", "--data", "synthetic", "--batch-size", "8", "--image-size", "24",
        "--max-images", "16", "--quiet"]


def one_line_error(cli, *args, match: str) -> str:
    code, _, err = cli(*args)
    assert code != 0, err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), err
    return err


def test_unknown_names_suggest_close_matches(cli, tmp_path: Path) -> None:
    one_line_error(cli, "distill", *BASE, "--recipe", "simclrr", "--out", tmp_path / "a",
                   match=r"unknown recipe 'simclrr'; did you mean simclr")
    one_line_error(cli, "distill", *BASE, "--recipe", "mvmr", "--teacher", "moco-v3-vit-b61", "--teacher-weights",
                   "random", "--out", tmp_path / "b", match=r"unknown teacher.*moco-v3-vit-b16")
    one_line_error(cli, "distill", "--student", "resnet1888", "--data", "synthetic", "--recipe", "simclr",
                   "--out", tmp_path / "c", match=r"unknown student 'resnet1888'.*did you mean")
    one_line_error(cli, "list", "teacherz", match=r"teacherz")


def test_data_folders(cli, tmp_path: Path) -> None:
    args = ["distill", "--student", "resnet10t", "--recipe", "simclr", "--max-steps", "1", "--quiet"]
    one_line_error(cli, *args, "--data", tmp_path / "missing", "--out", tmp_path / "r1", match="does not exist")
    (tmp_path / "empty").mkdir()
    one_line_error(cli, *args, "--data", tmp_path / "empty", "--out", tmp_path / "r2", match="no images found")
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("hello")
    one_line_error(cli, *args, "--data", texts, "--out", tmp_path / "r3", match="no images found")


def test_every_image_corrupt_names_a_file(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(4):
        (bad / f"img{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    one_line_error(cli, "distill", "--student", "resnet10t", "--recipe", "simclr", "--data", bad, "--batch-size", "2",
                   "--max-steps", "2", "--out", tmp_path / "r", "--quiet", match=r"every image failed.*img\d\.jpg")


def test_some_corrupt_images_and_a_bomb_are_skipped(cli, tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "mixed"
    data.mkdir()
    for i in range(10):
        Image.new("RGB", (20, 20), (20 * i, 50, 90)).save(data / f"ok{i}.png")
    (data / "truncated.png").write_bytes((data / "ok0.png").read_bytes()[:40])
    Image.new("L", (300, 300)).save(data / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    code, out, err = cli("distill", "--student", "resnet10t", "--recipe", "simclr", "--data", data, "--batch-size",
                         "4", "--epochs", "1", "--image-size", "24", "--out", tmp_path / "r", "--quiet",
                         "--set", "projector_dims=[16,16]")
    assert code == 0, err
    assert (tmp_path / "r" / "student.safetensors").is_file()


def test_teacher_weights(cli, tmp_path: Path) -> None:
    args = ["distill", *BASE, "--recipe", "feature-kd", "--teacher", "timm:resnet10t", "--max-steps", "1"]
    one_line_error(cli, *args, "--teacher-weights", tmp_path / "nope.pth", "--out", tmp_path / "a",
                   match=r"nope\.pth")
    truncated = tmp_path / "trunc.pth"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    one_line_error(cli, *args, "--teacher-weights", truncated, "--out", tmp_path / "b", match=r"trunc\.pth")
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(2, 2)}}, other)
    one_line_error(cli, *args, "--teacher-weights", other, "--out", tmp_path / "c", match=r"(?i)missing|unexpected")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_malicious_pickle_is_refused_not_run(cli, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:
        pickle.dump({"state_dict": _Exploit(marker)}, fh)
    one_line_error(cli, "distill", *BASE, "--recipe", "feature-kd", "--teacher", "timm:resnet10t", "--max-steps",
                   "1", "--teacher-weights", evil, "--out", tmp_path / "r", match=r"--trust-checkpoint|weights_only")
    assert not marker.exists()


@pytest.mark.parametrize(("text", "match"), [
    ("student: [oops\n", r"not valid YAML at line"),
    ("studnet: resnet18\n", r"unknown key 'studnet'.*'student'"),
    ("batch_size: lots\n", r"batch_size .* must be int"),
    ("recipe_config: {temprature: 0.2}\n", r"unknown simclr option 'temprature'.*temperature"),
])
def test_bad_config_files(cli, tmp_path: Path, text: str, match: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("recipe: simclr\n" + text)
    one_line_error(cli, "distill", *BASE, "--config", cfg, "--out", tmp_path / "r", match=match)
    one_line_error(cli, "distill", *BASE, "--config", tmp_path / "none.yaml", match="does not exist")


def test_resume_without_checkpoint(cli, tmp_path: Path) -> None:
    one_line_error(cli, "distill", *BASE, "--recipe", "simclr", "--resume", "--out", tmp_path / "fresh",
                   match=r"no checkpoint.*without\s+--resume")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(cli, tmp_path: Path) -> None:
    run = tmp_path / "nan"
    common = ["distill", *BASE, "--recipe", "simclr", "--out", run, "--checkpoint-every", "1"]
    code, _, err = cli(*common, "--max-steps", "2")
    assert code == 0, err
    student = (run / "student.safetensors").read_bytes()
    # Damage the weights of the newest checkpoint (finite, but 1e30 times too large): the next forward overflows.
    ckpt = run / "checkpoints" / "step_0000002.pt"
    state = torch.load(ckpt, weights_only=True)
    state["recipe"] = {k: v * 1e30 if v.is_floating_point() else v for k, v in state["recipe"].items()}
    torch.save(state, ckpt)
    one_line_error(cli, *common, "--max-steps", "4", "--resume",
                   match=r"became (nan|inf|non-finite) at step 3.*checkpoint \(step 2\).*kept")
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.pt"))
    assert ckpts[-1] == "step_0000002.pt"
    assert (run / "student.safetensors").read_bytes() == student  # the good student of step 2 is not replaced


def test_full_disk_while_checkpointing_keeps_the_previous_one(cli, tmp_path: Path, monkeypatch) -> None:
    real_save = torch.save
    calls = {"n": 0}

    def save(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] >= 2:  # the first checkpoint lands, the second finds the disk full
            with open(f, "wb") as fh:
                fh.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    run = tmp_path / "full"
    one_line_error(cli, "distill", *BASE, "--recipe", "simclr", "--out", run, "--checkpoint-every", "1",
                   "--max-steps", "3", match=r"No space left.*step 1 is kept.*--resume")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000001.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(run / "checkpoints" / "step_0000001.pt", weights_only=True)["step"] == 1


def test_cuda_out_of_memory_suggests_a_batch_size(tmp_path: Path, monkeypatch) -> None:
    from compressor.engine.config import TrainConfig
    from compressor.engine.trainer import Trainer
    from compressor.errors import CompressorError

    trainer = Trainer(TrainConfig(student="resnet10t", recipe="simclr", data="synthetic", batch_size=32,
                                  image_size=24, out=str(tmp_path / "oom"), max_steps=1), progress=False)
    trainer._setup()

    def explode(batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer.recipe, "step", explode)
    with pytest.raises(CompressorError, match=r"out of memory at batch size 32; try --batch-size 16"):
        trainer._train_step(0, {"x1": torch.zeros(1)})


def test_debug_shows_the_traceback(cli, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="unknown recipe"):
        from compressor.cli.main import main

        main(["distill", *BASE, "--recipe", "nope", "--out", str(tmp_path / "d"), "--debug"])


def test_divergence_read_at_a_later_log_step_still_names_its_first_step(cli, tmp_path: Path) -> None:
    """The finite checks run on the device and are read every --log-every steps (and before checkpoints):
    a divergence at step 3 found at the log step 6 names step 3, logs nothing after it and keeps step 2."""
    import json

    run = tmp_path / "late"
    common = ["distill", *BASE, "--recipe", "simclr", "--out", run, "--log-every", "6", "--checkpoint-every", "100"]
    code, _, err = cli(*common, "--max-steps", "2")
    assert code == 0, err
    ckpt = run / "checkpoints" / "step_0000002.pt"
    state = torch.load(ckpt, weights_only=True)
    state["recipe"] = {k: v * 1e30 if v.is_floating_point() else v for k, v in state["recipe"].items()}
    torch.save(state, ckpt)
    one_line_error(cli, *common, "--max-steps", "8", "--resume",
                   match=r"became (nan|inf|-inf|non-finite) at step 3.*checkpoint \(step 2\).*kept")
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == ["step_0000002.pt"]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps and max(steps) <= 2, steps


def test_divergence_watch_keeps_the_first_divergence() -> None:
    from compressor.engine.guards import DivergenceWatch

    watch = DivergenceWatch(torch.device("cpu"))
    watch.note("loss", torch.tensor(True), 1, torch.tensor(0.5))
    assert watch.verdict() is None
    watch.note("weights", torch.tensor(False), 3)
    watch.note("loss", torch.tensor(False), 4, torch.tensor(float("nan")))
    assert watch.verdict() == ("weights", 3, 0.0)
    late = DivergenceWatch(torch.device("cpu"))
    late.note("loss", torch.tensor(False), 7, torch.tensor(float("inf")))
    assert late.verdict() == ("loss", 7, float("inf"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs only exist with an accelerator")
def test_the_hot_loop_does_not_sync_with_the_gpu_between_log_steps(tmp_path: Path) -> None:
    from compressor.engine.config import TrainConfig
    from compressor.engine.trainer import Trainer

    trainer = Trainer(TrainConfig(student="resnet10t", recipe="simclr", data="synthetic", batch_size=16,
                                  image_size=32, out=str(tmp_path / "gpu"), max_steps=4, log_every=100,
                                  precision="bf16"), progress=False)
    trainer._setup()
    batch = next(iter(torch.utils.data.DataLoader(trainer.data, batch_size=16, collate_fn=_collate)))
    trainer._train_step(0, dict(batch))  # the first step may sync (lazy initialisation, cuDNN autotuning)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in (1, 2):
            trainer._train_step(step, dict(batch))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.watch.verdict() is None


def _collate(items):
    from compressor.data.loader import collate_views

    batch = collate_views(items)
    batch.pop("_skipped")
    return batch
