"""The export backend registry: one module per runtime family, each registering itself as a recipe does.

A backend (:class:`ExportBackend`) owns everything about one family of deployable files:

- the **formats** it writes (:class:`Format`: name, file stem, precision, default parity threshold, whether
  ``--qad-steps`` can train for it, whether ``compress pick`` tries it, the other names it answers to),
- the **suffixes** of its files and the **runtimes** (``compress bench --backend`` names) that run them,
- the **availability** of its runtime (the one-line install hint, the extra named once, in its module),
- how to **export** one format (:meth:`ExportBackend.export`, given an :class:`~compressor.export.job.ExportJob`),
- how to build a **bench runner** for one of its files (:meth:`ExportBackend.runner`).

``exporter.py``, ``bencher.py``, ``runners.py`` and ``pick.py`` only iterate this registry. The built-in
backends are ``export/backends/{onnxruntime,openvino,tensorrt}.py``, found through the
``compressor.export_backends`` entry-point group at the first lookup, so a plug-in package adds a backend
(CoreML, TFLite, ExecuTorch, ...) with one file and one line in its own ``pyproject.toml``::

    [project.entry-points."compressor.export_backends"]
    coreml = "my_package.coreml_backend"

(``--format timm`` is not a graph and has no runtime: it stays a folder writer of its own, ``timm_format.py``.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.errors import CompressorError
from compressor.manifest import ExportEntry
from compressor.registry import Registry, unknown_name_message

if TYPE_CHECKING:
    from compressor.export.job import ExportJob
    from compressor.export.options import ExportOptions

# A runner's prepare(batch) returns a zero-argument step that runs the model once (see runners.py).
Runner = Any


@dataclass(frozen=True)
class Format:
    """One ``--format`` value: what file it writes and when it is kept."""

    name: str  # "onnx-int8"
    stem: str  # "model.int8": the file is stem [+ ".qad"] [+ ".rgb8"] + the backend's suffix
    precision: str  # fp32 | fp16 | int8
    min_cosine: float  # default minimum mean cosine vs the PyTorch fp32 student (``--min-cosine``)
    qad: bool = False  # ``--qad-steps`` can train for it (export/qad.py has its scheme)
    pick: bool = True  # ``compress pick`` tries it for its backend's runtimes
    # Other ``--format`` names for it, resolved by :func:`get_format` (``trt`` is ``trt-fp16``: what TensorRT
    # users mean by an engine, as Ultralytics' ``engine`` export does); the manifest records ``name``.
    aliases: tuple[str, ...] = ()


class ExportBackend(ABC):
    """A runtime family; subclasses set the class attributes and implement the three methods."""

    name: str  # "onnxruntime"
    formats: tuple[Format, ...]
    suffixes: tuple[str, ...]  # file suffixes it reads back (the first is what it writes)
    runtimes: tuple[str, ...]  # `compress bench --backend` names that run its files

    @abstractmethod
    def unavailable(self, fmt: str) -> str | None:
        """``None`` when ``fmt`` can be exported here, else one line naming what to install."""

    @abstractmethod
    def export(self, job: ExportJob) -> ExportEntry:
        """Write ``job.work / job.name`` (and its :meth:`sidecars`), check it, return its manifest facts."""

    def format(self, name: str) -> Format:
        """This backend's :class:`Format` called ``name``."""
        return next(f for f in self.formats if f.name == name)

    def sidecars(self, name: str) -> tuple[str, ...]:
        """Files beside ``name`` that belong to it (an OpenVINO IR's ``.bin``), moved and recorded with it."""
        return ()

    def finish(self, work: Path, out_dir: Path) -> None:
        """After the file is kept: copy what the next export can reuse (TensorRT's timing cache)."""
        return None

    def runtime_unavailable(self, runtime: str) -> str | None:
        """``None`` when bench can run ``runtime`` here."""
        return self.unavailable(self.formats[0].name)

    @abstractmethod
    def runner(self, runtime: str, path: Path, entry: ExportEntry, *, threads: int,
               reexport: Callable[[ExportOptions], ExportEntry] | None) -> tuple[Runner, str, str]:
        """``(runner, format, precision)`` of one file for ``runtime``; ``entry`` is its manifest entry (or the
        file's own metadata); ``reexport`` rebuilds the file from its run when it no longer fits this machine."""


EXPORT_BACKENDS: Registry[ExportBackend] = Registry("export backend", entry_point_group="compressor.export_backends")


def register_backend(cls: type[ExportBackend]) -> type[ExportBackend]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    EXPORT_BACKENDS.add(cls.name, cls())
    return cls


def backends() -> list[ExportBackend]:
    return [EXPORT_BACKENDS.get(n) for n in EXPORT_BACKENDS.names()]


def formats() -> dict[str, tuple[Format, ExportBackend]]:
    """Every registered format, by name, with its backend."""
    return {f.name: (f, b) for b in backends() for f in b.formats}


def format_aliases() -> dict[str, str]:
    """``{alias: format name}`` over every registered format (``{"trt": "trt-fp16"}``)."""
    table = formats()
    out: dict[str, str] = {}
    for f, _ in table.values():
        for alias in f.aliases:
            if alias in table or alias in out or alias == "timm":
                raise ValueError(f"export format alias {alias!r} of {f.name} is already a format or an alias")
            out[alias] = f.name
    return out


def get_format(name: str) -> tuple[Format, ExportBackend]:
    """The format called ``name`` (or one of its aliases) and its backend; an unknown name fails with suggestions."""
    table = formats()
    name = format_aliases().get(name, name)
    if name not in table:
        raise CompressorError(unknown_name_message("export format", name, [*table, *format_aliases(), "timm"]))
    return table[name]


def backend_for_file(path: Path) -> ExportBackend | None:
    """The backend whose files end like ``path`` (``None`` for a file no backend reads)."""
    for b in backends():
        if path.suffix in b.suffixes:
            return b
    return None


def backend_for_runtime(runtime: str) -> ExportBackend | None:
    for b in backends():
        if runtime in b.runtimes:
            return b
    return None


def bench_runtimes() -> list[str]:
    """``torch`` and every registered backend's runtimes: what ``compress bench --backend`` takes."""
    return ["torch", *(r for b in backends() for r in b.runtimes)]


def runtime_suffixes() -> dict[str, tuple[str, ...]]:
    """``{".onnx": ("ort-cpu", "ort-cuda"), ...}``: which bench runtimes run which files."""
    return {s: b.runtimes for b in backends() for s in b.suffixes}
