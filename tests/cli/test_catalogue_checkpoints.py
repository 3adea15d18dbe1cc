"""Catalogue — checkpoints and resume: a resume continues exactly the run it names, or says why not."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.cli.catalogue import TINY, digest, one_line_error


def _resume(run: Path, *extra: str) -> list:
    return ["distill", *TINY, "--max-steps", "3", "--checkpoint-every", "1", "--resume", "--out", run, *extra]


def test_resume_with_another_student(cli, finished_run: Path) -> None:
    before = digest(finished_run)
    one_line_error(cli, *_resume(finished_run, "--student", "resnet10t"),
                   match=r"was trained with --student test_resnet, not resnet10t.*drop --student")
    assert digest(finished_run) == before


def test_resume_with_other_projector_dims(cli, finished_run: Path) -> None:
    before = digest(finished_run)
    one_line_error(cli, *_resume(finished_run, "--set", "projector_dims=[32,16]"),
                   match=r"--set projector_dims=\[16, 16\], not \[32, 16\]")
    assert digest(finished_run) == before


def test_resume_with_another_learning_rate(cli, finished_run: Path) -> None:
    """The optimiser state would restore the old lr and ignore the flag without a word."""
    one_line_error(cli, *_resume(finished_run, "--set", "lr=0.5"), match=r"--set lr=0\.001, not 0\.5")


def test_resume_with_another_image_size(cli, finished_run: Path) -> None:
    one_line_error(cli, *_resume(finished_run, "--image-size", "48"),
                   match=r"--image-size 32, not 48")


def test_resume_with_another_recipe(cli, finished_run: Path) -> None:
    one_line_error(cli, "distill", "--student", "test_resnet", "--recipe", "supervised", "--data", "synthetic",
                   "--image-size", "32", "--max-images", "16", "--batch-size", "8", "--quiet", "--resume",
                   "--max-steps", "3", "--out", finished_run, "--config", finished_run / "config.yaml",
                   match=r"unknown supervised option|--recipe simclr, not supervised")


def test_checkpoint_whose_shapes_do_not_fit(cli, finished_run: Path) -> None:
    """A checkpoint of an older version (no recorded options) is still compared tensor by tensor."""
    ckpt = sorted((finished_run / "checkpoints").glob("*.pt"))[-1]
    state = torch.load(ckpt, weights_only=True)
    state.pop("recipe_config")
    key = next(k for k, v in state["recipe"].items() if v.ndim == 2)
    state["recipe"][key] = torch.zeros(3, 3)
    torch.save(state, ckpt)
    one_line_error(cli, *_resume(finished_run), match=rf"{key} is \[3, 3\] in the checkpoint but")


def test_every_checkpoint_unreadable(cli, finished_run: Path) -> None:
    for p in (finished_run / "checkpoints").glob("*.pt"):
        p.write_bytes(b"PK\x03\x04 not a zip")
    one_line_error(cli, *_resume(finished_run), match=r"every checkpoint .* is unreadable; start the run again")


def test_rerun_without_resume_refuses_to_overwrite(cli, finished_run: Path) -> None:
    before = digest(finished_run)
    one_line_error(cli, "distill", *TINY, "--max-steps", "1", "--out", finished_run,
                   match=r"already holds a run; pass --resume")
    assert digest(finished_run) == before


def test_resume_needs_out(cli) -> None:
    one_line_error(cli, "distill", *TINY, "--max-steps", "1", "--resume", match=r"--resume needs --out DIR")


def test_student_json_empty_object(cli, finished_run: Path) -> None:
    (finished_run / "student.json").write_text("{}")
    one_line_error(cli, "eval", finished_run,
                   match=r"student\.json is not a compressor model description \(no 'arch'\)")


def test_student_json_wrong_types(cli, finished_run: Path) -> None:
    p = finished_run / "student.json"
    p.write_text(p.read_text().replace('"image_size": 32', '"image_size": "big"'))
    one_line_error(cli, "export", finished_run, match=r"'image_size' must be int")


def test_student_weights_of_another_model(cli, finished_run: Path) -> None:
    p = finished_run / "student.json"
    p.write_text(p.read_text().replace('"arch": "test_resnet"', '"arch": "resnet10t"'))
    one_line_error(cli, "eval", finished_run, match=r"does not match resnet10t in student\.json")


def test_student_weights_truncated(cli, finished_run: Path) -> None:
    w = finished_run / "student.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    one_line_error(cli, "eval", finished_run,
                   match=r"student\.safetensors is corrupt|cannot read .*student\.safetensors")


def test_eval_of_an_unfinished_run(cli, finished_run: Path) -> None:
    (finished_run / "student.json").unlink()
    one_line_error(cli, "eval", finished_run, match=r"run has not finished .*--resume")
