"""A third-party export backend in one file: TorchScript (``--format torchscript``, bench ``--backend torchscript``).

It is registered by one entry-point line in its package's metadata (``compressor.export_backends``), the
way tests/export/test_backend_registry.py installs it; nothing in compressor names it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from compressor.export.backend import ExportBackend, Format, Runner, register_backend
from compressor.export.job import ExportJob
from compressor.export.options import ExportOptions


class _TorchScriptRunner:
    def __init__(self, path: Path) -> None:
        self.module = torch.jit.load(str(path)).eval()

    def prepare(self, inputs: np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(inputs))

        def step() -> np.ndarray:
            with torch.inference_mode():
                return self.module(x).numpy()

        return step


@register_backend
class TorchScriptBackend(ExportBackend):
    name = "torchscript"
    formats = (Format("torchscript", "model", "fp32", 0.9999),)
    suffixes = (".ts",)
    runtimes = ("torchscript",)

    def unavailable(self, fmt: str) -> str | None:
        return None

    def export(self, job: ExportJob) -> dict:
        example = torch.from_numpy(job.check.images[:2])
        with torch.no_grad():
            torch.jit.trace(job.encoder.eval(), example).save(str(job.path))
        output = _TorchScriptRunner(job.path).prepare(job.check.images)()
        fidelity, _ = job.verdict(job.reference(), output)
        return {"fidelity": fidelity, "input": {"preprocess_baked": False}}

    def runner(self, runtime: str, path: Path, entry: dict, *, threads: int,
               reexport: Callable[[ExportOptions], dict] | None) -> tuple[Runner, str, str]:
        return _TorchScriptRunner(path), "torchscript", "fp32"
