"""The four-call Python API: ``compressor.distill``, ``compressor.export``, ``compressor.embed``, ``compressor.load``.

Each is a thin, typed front to the library function the matching ``compress`` command calls, with the same
defaults (declared once, in :class:`~compressor.engine.config.TrainConfig` and
:class:`~compressor.export.options.ExportOptions`)::

    import compressor

    run = compressor.distill("resnet18", teacher="clip-vit-b16", teacher_weights="clip.safetensors",
                             data="./my-images", epochs=20, image_size=128, out="runs/r18")
    onnx_file = compressor.export(run, "onnx-int8")
    vectors, files = compressor.embed(run, "./my-images")
    student = compressor.load(run)  # an nn.Module: student(images) -> (B, dim); student.spec: size, mean, std

The heavy libraries load inside the calls, so ``import compressor`` stays as light as ``compress --help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.utils.coerce import unknown_fields

if TYPE_CHECKING:
    import numpy as np

    from compressor.models.encoder import Encoder

__all__ = ["distill", "embed", "export", "load"]


def distill(student: str, *, data: str, teacher: str | None = None, recipe: str | None = None,
            out: str | Path | None = None, progress: bool = False, **fields: Any) -> Path:
    """Train ``student`` with a recipe and return its run directory (``compress distill``).

    Args:
        student: a timm architecture (``resnet18``; ``compress list students``).
        data: a folder of images, ``fashion-mnist``, ``synthetic`` or WebDataset shards (docs/data.md).
        teacher: a teacher name (``compress list teachers``), ``timm:<name>``, ``open_clip:<arch>:<tag>`` or a
            run directory; ``None`` for the recipes that train alone or with a peer.
        recipe: a registered recipe (``compress list recipes``); ``None`` takes TrainConfig's default.
        out: the run directory (default ``runs/<recipe>-<student>-<time>``).
        progress: show the progress bar.
        **fields: any other field of :class:`~compressor.engine.config.TrainConfig`, by its Python name
            (``epochs``, ``max_steps``, ``batch_size``, ``image_size``, ``teacher_weights``, ``recipe_config`` ...).
    """
    from compressor.engine.config import TrainConfig
    from compressor.engine.trainer import train

    given: dict[str, Any] = {k: v for k, v in {"teacher": teacher, "recipe": recipe}.items() if v is not None}
    if out is not None:
        given["out"] = str(out)
    unknown_fields("distill", fields, TrainConfig)
    return train(TrainConfig(student=student, data=data, **given, **fields), progress=progress)


def export(run: str | Path, format: str = "onnx", **options: Any) -> Path:
    """Export the student of ``run`` and return the exported file (``compress export``).

    Args:
        run: a run directory written by :func:`distill`.
        format: ``onnx``, ``onnx-fp16``, ``onnx-int8``, ``openvino``, ``openvino-int8``, ``trt-fp16``,
            ``trt-int8`` or ``timm`` (docs/export.md).
        **options: any other field of :class:`~compressor.export.options.ExportOptions` (``calib_size``,
            ``out_dir``, ``bake_preprocess`` ...). The file's fidelity figures are in ``RUN/export/manifest.json``.
    """
    from compressor.export.exporter import export_file

    return export_file(run, format, **options)


def embed(model: str | Path, images: str | Path, *, out: str | Path | None = None, batch_size: int = 64,
          device: str = "cpu", progress: bool = False) -> tuple[np.ndarray, list[str]]:
    """Embeddings of every image under the folder ``images`` (``compress embed``).

    Args:
        model: a run directory, or an ``.onnx`` / OpenVINO ``.xml`` file written by :func:`export`.
        images: a folder of images, searched recursively; unreadable files are skipped and named in the log.
        out: also write them to this ``.npy``, ``.safetensors`` or ``.parquet`` file (+ ``.files.txt``).
        device: ``cpu`` or ``cuda`` (a run directory only; exported files run on ONNX Runtime / OpenVINO).

    Returns:
        ``(vectors, files)``: a float32 array (N, dim) and the N image paths relative to ``images``, row by row.
    """
    from compressor.export.embed_files import embed_folder

    return embed_folder(model, images, out, batch_size=batch_size, device=device, progress=progress)


def load(run: str | Path, *, device: str = "cpu") -> Encoder:
    """The trained student of ``run`` in eval mode: ``encoder(images) -> (B, dim)`` embeddings.

    ``encoder.spec`` holds the input it expects (``image_size``, ``mean``, ``std``) and ``encoder.embed_dim``
    its width; the file is read with safetensors, never unpickled.
    """
    from compressor.models.saved import load_encoder

    return load_encoder(run).to(device).eval()
