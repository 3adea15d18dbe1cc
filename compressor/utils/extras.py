"""Optional dependencies: the heavy parts a user may not need sit in pip extras and load on first use.

``pip install compressor`` trains, exports to ONNX and benchmarks; these parts are extras (pyproject.toml,
``[project.optional-dependencies]``), and a missing one is one line naming the extra to install:

======================  =============  ==========================================================
module                  extra          what needs it
======================  =============  ==========================================================
``open_clip``           ``clip``       the CLIP and SigLIP teachers (open_clip's image towers)
``matplotlib``          ``report``     the report's plots, ``bench --plot``, ``pick --plot``
``tensorboard``         ``tensorboard``  TensorBoard event files beside ``metrics.jsonl``
``openvino``, ``nncf``  ``openvino``   ``--format openvino|openvino-int8``, ``--backend openvino``
``torch_pruning``       ``prune``      ``compress prune`` (a pruned run loads and exports without it)
``wandb``               ``wandb``      ``--logger wandb`` (Weights & Biases, offline by default)
``mlflow``              ``mlflow``     ``--logger mlflow`` (MLflow's client, mlflow-skinny)
``datasets``            ``hf``         ``--data`` with a Hugging Face dataset saved by ``save_to_disk``
======================  =============  ==========================================================

``make`` and CI install every extra (``pip install -c constraints.txt -e '.[all,dev]'``).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from compressor.errors import CompressorError

# module → (extra, the PyPI package that provides it)
EXTRAS: dict[str, tuple[str, str]] = {
    "open_clip": ("clip", "open-clip-torch"),
    "matplotlib": ("report", "matplotlib"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "openvino": ("openvino", "openvino"),
    "nncf": ("openvino", "nncf"),
    "torch_pruning": ("prune", "torch-pruning"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow-skinny"),
    "datasets": ("hf", "datasets"),
}


def install_hint(module: str) -> str:
    """``pip install 'compressor[EXTRA]'`` for ``module`` (the command that brings it)."""
    extra, _ = EXTRAS[module]
    return f"pip install 'compressor[{extra}]'"


def missing_message(module: str, purpose: str) -> str:
    """One line: what needs ``module``, which package it is, and the extra that installs it."""
    _, package = EXTRAS[module]
    return f"{purpose} needs {package}, which is not installed: {install_hint(module)}"


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (an optional dependency) or raise one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise CompressorError(missing_message(module, purpose)) from err
