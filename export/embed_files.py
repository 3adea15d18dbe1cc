"""``compress embed``: embeddings of a folder of images with a run's student or an exported file.

The model is a run directory (PyTorch), an ``.onnx`` file exported by ``compress export`` (its
``manifest.json`` says the input size, mean/std and whether the normalisation is baked in), or an
OpenVINO ``.xml`` when ``openvino`` is importable. Images go through the student's eval transform in
batches; an unreadable file is skipped and named (the run's loader warns), and the file list written
beside the output names exactly the images whose rows are in it, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from compressor.data.datasets import FolderDataset
from compressor.data.loader import ViewDataset, collate_views
from compressor.data.transforms import Views, eval_transform
from compressor.errors import CompressorError
from compressor.models.encoder import InputSpec
from compressor.rundir import MANIFEST
from compressor.utils.io import atomic_write, atomic_write_text

log = logging.getLogger("compressor")
FORMATS = (".npy", ".safetensors", ".parquet")
Model = Callable[[torch.Tensor], np.ndarray]


def _exported(path: Path) -> tuple[Model, InputSpec]:
    """The exported file as a callable; read under a reader's lock on its folder, so no `compress export`
    rewrites it between the check of its bytes and the session that loads them."""
    from compressor.runlock import reading

    with reading(path.parent, "embed"):
        return _load_exported(path)


def _load_exported(path: Path) -> tuple[Model, InputSpec]:
    from compressor.manifest import preprocess_baked, read_manifest, verify_export

    manifest = read_manifest(path.parent)
    entry, student = manifest["exports"].get(path.name), manifest.get("student")
    if entry is None or student is None:
        raise CompressorError(f"{path} has no entry in {path.parent / MANIFEST}; embed the run directory, "
                              "or keep the file beside the manifest `compress export` wrote")
    verify_export(path)
    spec = InputSpec.from_dict(student)
    baked = preprocess_baked(entry)
    if path.suffix == ".xml":
        try:
            import openvino as ov
        except ImportError as err:
            raise CompressorError("embedding an OpenVINO model needs `pip install openvino`") from err
        compiled = ov.Core().compile_model(str(path), "CPU")
        run = lambda a: compiled(a)[0]  # noqa: E731
    else:
        from compressor.export.runtime import make_session

        session = make_session(path)
        name = session.get_inputs()[0].name
        run = lambda a: session.run(None, {name: a})[0]  # noqa: E731
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)

    def forward(x: torch.Tensor) -> np.ndarray:
        if baked:  # the graph takes uint8 NHWC RGB: undo the normalisation of the eval transform
            x = ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return np.asarray(run(x.contiguous().numpy()), dtype=np.float32)

    return forward, spec


def load_model(target: str | Path, device: str = "cpu") -> tuple[Model, InputSpec]:
    """A callable batch → embeddings (float32 numpy) and the input it expects."""
    path = Path(target)
    if path.is_dir():
        from compressor.models.saved import load_encoder

        enc = load_encoder(path).to(device)

        @torch.no_grad()
        def forward(x: torch.Tensor) -> np.ndarray:
            return enc(x.to(device)).float().cpu().numpy()

        return forward, enc.spec
    if path.suffix in (".onnx", ".xml") and path.is_file():
        return _exported(path)
    raise CompressorError(f"{target} is not a run directory, an .onnx file or an OpenVINO .xml; pass the --out "
                          "of `compress distill` or a file written by `compress export`")


def _save_npy(path: Path, emb: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append .npy to the temporary name
        np.save(fh, emb)


def write_embeddings(out: Path, emb: np.ndarray, files: list[str]) -> Path:
    """``out`` (.npy, .safetensors or .parquet) and ``<out stem>.files.txt``; returns the file list's path."""
    if out.suffix == ".npy":
        atomic_write(out, lambda p: _save_npy(p, emb))
    elif out.suffix == ".safetensors":
        from safetensors.numpy import save_file

        atomic_write(out, lambda p: save_file({"embeddings": emb}, str(p), metadata={"files": "\n".join(files)}))
    elif out.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:
            raise CompressorError("--out *.parquet needs `pip install pyarrow` (or write .npy / .safetensors)") \
                from err
        table = pa.table({"file": files, "embedding": list(emb)})
        atomic_write(out, lambda p: pq.write_table(table, str(p)))
    else:
        raise CompressorError(f"--out {out.name}: use a .npy, .safetensors or .parquet file")
    listing = out.with_suffix(".files.txt")
    atomic_write_text(listing, "".join(f + "\n" for f in files))
    return listing


def embed_folder(target: str | Path, folder: str | Path, out: str | Path | None, *, batch_size: int = 64,
                 device: str = "cpu", progress: bool = True) -> tuple[np.ndarray, list[str]]:
    """Embed every image under ``folder`` with ``target``; writes ``out`` and its file list (none when ``None``)."""
    out = None if out is None else Path(out)
    if out is not None and out.suffix not in FORMATS:
        raise CompressorError(f"--out {out.name}: use a .npy, .safetensors or .parquet file")
    root = Path(folder)
    if not root.is_dir():
        raise CompressorError(f"{folder} is not a folder of images")
    model, spec = load_model(target, device)
    ds = FolderDataset.scan(root)
    ds.labels = list(range(len(ds)))  # the label slot carries the index, to name the files that loaded
    loader = DataLoader(ViewDataset(ds, Views(x=eval_transform(spec)), seed=0), batch_size=batch_size,
                        collate_fn=collate_views)
    batches: Iterable[dict[str, torch.Tensor]] = loader
    if progress:
        from compressor.utils.progress import track

        batches = track(loader, description="embedding", total=len(loader))
    rows, kept = [], []
    for batch in batches:
        if "x" in batch:
            rows.append(model(batch["x"]))
            kept += [str(ds.files[int(i)].relative_to(root)) for i in batch["label"]]
    skipped = len(ds) - len(kept)
    if not rows:
        raise CompressorError(f"none of the {len(ds)} images in {root} could be read (named above)")
    if skipped:
        log.warning("%d unreadable images were skipped (named above)", skipped)
    emb = np.concatenate(rows)
    if out is not None:
        write_embeddings(out, emb, kept)
    return emb, kept
