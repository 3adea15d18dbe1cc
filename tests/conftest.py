"""Shared fixtures: small real models and data, and the CLI run in-process."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from compressor.data.datasets import find_fashion_mnist
from compressor.models.encoder import Encoder
from compressor.models.students import build_student
from compressor.plugins import load_plugins

# `make test` runs the suite in two pytest-xdist workers on a 2-core machine: one thread each (and in the
# processes they start), so the workers do not fight over the cores; a plain `pytest` keeps two threads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)
load_plugins()  # the recipes register themselves with the core now, not at the first lookup


def frozen_teacher(arch: str = "resnet10t", image_size: int = 40) -> Encoder:
    """A real timm network used as a frozen teacher (a different size from the students, on purpose)."""
    torch.manual_seed(123)
    enc = build_student(arch, image_size)
    enc.info = {"name": arch, "weights": "random", "random": True}  # type: ignore[attr-defined]
    return enc.freeze()


@pytest.fixture
def teacher() -> Encoder:
    return frozen_teacher()


requires_fmnist = pytest.mark.skipif(find_fashion_mnist() is None,
                                     reason="Fashion-MNIST not installed (Debian package dataset-fashion-mnist)")


@pytest.fixture
def cli(capsys):
    """Run ``compress ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from compressor.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A labelled folder: 3 classes × 6 PNG images of distinct colours."""
    from PIL import Image

    root = tmp_path / "imgs"
    for c, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (24 + i, 24), tuple(min(255, v + 5 * i) for v in colour)).save(d / f"{i}.png")
    return root


sys.dont_write_bytecode = True


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` (scripts, not a package) imported as the module ``<name>_benchmark``.

    The scripts import their shared helpers as ``common`` (run as ``python benchmarks/x.py``, Python puts their
    folder first on the path); here that module is loaded once under the same name, without a path edit."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if name != "common" and "common" not in sys.modules:
        _load_as("common", folder / "common.py")
    return _load_as(f"{name}_benchmark", folder / f"{name}.py")


def _load_as(module_name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def assert_resume_after_step_2_of_4_is_exact(cfg, tmp_path: Path) -> None:
    """A 4-step run, and the same run "killed" after step 2 (mid-epoch: 5 batches of 4) and resumed, end with
    the same weights. ``cfg(out, **kw)`` gives the run's TrainConfig (``resume=True`` for the second)."""
    import shutil

    from safetensors.torch import load_file

    from compressor.engine.trainer import train

    a = train(cfg(tmp_path / "a"), progress=False)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for f in ("student.safetensors", "student.json"):
        (b / f).unlink()
    later = list((b / "checkpoints").glob("step_0000004*"))
    assert later and list((b / "checkpoints").glob("step_0000002*"))
    for ckpt in later:
        ckpt.unlink()
    train(cfg(b, resume=True), progress=False)
    wa, wb = load_file(str(a / "student.safetensors")), load_file(str(b / "student.safetensors"))
    assert wa.keys() == wb.keys()
    assert max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa) <= 1e-6
