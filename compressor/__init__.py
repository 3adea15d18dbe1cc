"""compressor: train compact image encoders from self-supervised teachers, export and benchmark them.

The Python API is four calls (:mod:`compressor.api`; README, "From Python")::

    run = compressor.distill("resnet18", teacher="clip-vit-b16", data="./images", epochs=20)
    compressor.export(run, "onnx-int8")
    vectors, files = compressor.embed(run, "./images")
    student = compressor.load(run)

They load on first use, so ``import compressor`` pulls in neither torch nor the runtimes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from compressor.api import distill, embed, load

__all__ = ["__version__", "distill", "embed", "export", "load"]


def __getattr__(name: str) -> Any:
    if name in ("distill", "embed", "load"):
        return getattr(importlib.import_module("compressor.api"), name)
    if name == "export":  # the package, which is also callable as the function (see compressor/export)
        return importlib.import_module("compressor.export")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
