"""Self-describing files: the preprocessing contract and provenance inside the exported model.

An ONNX file copied alone to a device loses ``manifest.json``; its ``metadata_props`` keep what an
application needs to feed it and what it is::

    compressor.schema      compressor-onnx/1
    input.name             images
    input.dtype            float32 | uint8
    input.layout           NCHW | NHWC
    input.image_size       224
    input.color            RGB
    input.mean / input.std [0.485, 0.456, 0.406] / [0.229, 0.224, 0.225]  (JSON, on [0, 1] pixels)
    input.preprocess_baked false: normalise as above; true: feed uint8 RGB, the graph normalises
    input.resize           "short side to 224, centre crop 224"
    output.name            embeddings
    output.embed_dim       512
    output.l2_normalized   false (compare embeddings by cosine: L2-normalise them first)
    model.arch             resnet18
    model.format           onnx-int8     model.precision  int8
    provenance.tool        compressor 0.1.0     provenance.created  2026-11-29T04:00:00+0000
    provenance.torch / provenance.onnxruntime / provenance.opset

``compress bench model.onnx`` reads these back, so a bare file benches with the right input.
"""

from __future__ import annotations

import json
from pathlib import Path

from compressor.manifest import InputRecord

SCHEMA = "compressor-onnx/1"


def contract(input_block: dict, *, embed_dim: int, arch: str, fmt: str, precision: str, opset: int,
             output_name: str = "embeddings") -> dict[str, str]:
    """The ``metadata_props`` of one exported file (every value a string; lists as JSON)."""
    import time

    from compressor.export.env import tool_versions

    size = input_block["shape"][1] if input_block["layout"] == "NHWC" else input_block["shape"][2]
    tools = tool_versions()
    props = {
        "compressor.schema": SCHEMA,
        "input.name": input_block["name"],
        "input.dtype": input_block["dtype"],
        "input.layout": input_block["layout"],
        "input.image_size": str(size),
        "input.color": input_block.get("color", "RGB"),
        "input.mean": json.dumps(list(input_block["mean"])),
        "input.std": json.dumps(list(input_block["std"])),
        "input.preprocess_baked": json.dumps(bool(input_block.get("preprocess_baked", False))),
        "input.resize": f"short side to {size}, centre crop {size}",
        "output.name": output_name,
        "output.embed_dim": str(embed_dim),
        "output.l2_normalized": "false",
        "model.arch": arch,
        "model.format": fmt,
        "model.precision": precision,
        "provenance.opset": str(opset),
        "provenance.created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    props.update({f"provenance.{k}": str(v) for k, v in tools.items()})
    return props


def write_onnx_metadata(path: str | Path, props: dict[str, str]) -> None:
    """Replace the file's ``metadata_props`` with ``props`` (other tools' entries are kept)."""
    import onnx

    proto = onnx.load(str(path))
    kept = {p.key: p.value for p in proto.metadata_props if p.key not in props}
    del proto.metadata_props[:]
    for k, v in {**kept, **props}.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(path))


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The file's ``metadata_props`` as a dict (empty for a file not written by compressor)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def input_from_metadata(props: dict[str, str]) -> InputRecord | None:
    """The manifest-style ``input`` block rebuilt from ``metadata_props``, or ``None`` without our schema."""
    if props.get("compressor.schema") != SCHEMA:
        return None
    size = int(props["input.image_size"])
    baked = json.loads(props["input.preprocess_baked"])
    shape: list[int | str] = ["batch", size, size, 3] if baked else ["batch", 3, size, size]
    record: InputRecord = {"name": props["input.name"], "dtype": props["input.dtype"],
                           "layout": props["input.layout"], "shape": shape, "color": props["input.color"],
                           "preprocess_baked": baked, "mean": json.loads(props["input.mean"]),
                           "std": json.loads(props["input.std"])}
    return record
