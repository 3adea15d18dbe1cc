"""PyTorch encoder → ONNX (dynamic batch, ``images`` → ``embeddings``), simplified; FP16 conversion.

The graph takes ``images`` as float32 N×3×H×W normalised with the student's mean/std, or, with
``bake_preprocess=True``, uint8 N×H×W×3 RGB already resized and centre-cropped to H×W: the cast,
the layout change and the normalisation are then part of the graph.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import onnx
import torch
from torch import nn

from compressor.export.options import DEFAULT_OPSET
from compressor.models.encoder import Encoder, InputSpec

log = logging.getLogger("compressor")

INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
BAKED_SCOPE = "/preprocess"  # name prefix of the nodes of the baked normalisation (kept in fp32 by INT8)


class _Normalise(nn.Module):
    """uint8 N×H×W×3 RGB → float N×3×H×W normalised: ``x / 255`` then ``(x - mean) / std`` as one FMA."""

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.scale: torch.Tensor
        self.shift: torch.Tensor
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", -mean / std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.permute(0, 3, 1, 2).float() * self.scale + self.shift


class BakedPreprocess(nn.Module):
    """The encoder behind its own input normalisation, so an application can feed uint8 RGB."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.preprocess = _Normalise(encoder.spec)
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.preprocess(images))


def input_description(spec: InputSpec, *, baked: bool) -> dict:
    """The manifest's ``input`` block: what an application must feed the graph."""
    size = spec.image_size
    if baked:
        return {"name": INPUT_NAME, "dtype": "uint8", "shape": ["batch", size, size, 3], "layout": "NHWC",
                "color": "RGB", "preprocess_baked": True, "mean": list(spec.mean), "std": list(spec.std),
                "note": f"resize the short side to {size} and centre-crop; normalisation is in the graph"}
    return {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", 3, size, size], "layout": "NCHW",
            "color": "RGB", "preprocess_baked": False, "mean": list(spec.mean), "std": list(spec.std),
            "note": f"resize the short side to {size}, centre-crop, scale to [0, 1], subtract mean, "
                    "divide by std"}


def export_onnx(encoder: Encoder, path: str | Path, *, opset: int = DEFAULT_OPSET,
                bake_preprocess: bool = False, simplify: bool = True) -> dict:
    """Write ``encoder`` as an ONNX graph with a dynamic batch axis; returns facts for the manifest.

    Uses the TorchScript-based exporter (``dynamo=False``): it needs no extra package and handles
    every timm CNN and ViT the students come from.
    """
    if opset < 17:
        from compressor.errors import CompressorError

        raise CompressorError(f"--opset {opset} is too old: pass 17 or newer (LayerNormalization needs 17)")
    size = encoder.spec.image_size
    model: nn.Module = BakedPreprocess(encoder) if bake_preprocess else encoder
    model = model.eval().cpu()
    if bake_preprocess:
        dummy = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    else:
        dummy = torch.randn(2, 3, size, size)
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings are not the user's
        torch.onnx.export(model, (dummy,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    proto = onnx.load(str(path))
    tool = "none"
    if simplify:
        proto, tool = simplify_model(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return {"opset": opset, "simplifier": tool,
            "input": input_description(encoder.spec, baked=bake_preprocess),
            "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", encoder.embed_dim]}}


def simplify_model(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Constant-fold and clean the graph with onnxslim (or onnxsim); returns the model and the tool used."""
    try:
        import onnxslim
    except ImportError:
        onnxslim = None
    if onnxslim is not None:
        return onnxslim.slim(proto), f"onnxslim {onnxslim.__version__}"
    try:
        import onnxsim
    except ImportError:
        log.warning("neither onnxslim nor onnxsim is installed: the graph is left unsimplified "
                    "(pip install onnxslim)")
        return proto, "none"
    simplified, ok = onnxsim.simplify(proto)
    return (simplified, f"onnxsim {onnxsim.__version__}") if ok else (proto, "none")


def convert_fp16(src: str | Path, dst: str | Path) -> None:
    """Float16 weights and activations with float32 graph inputs and outputs (``keep_io_types``)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(half, str(dst))


def graph_input(path: str | Path) -> tuple[str, str, list]:
    """``(name, dtype, shape)`` of the first input of an ONNX file; symbolic dims are strings."""
    proto = onnx.load(str(path), load_external_data=False)
    inp = proto.graph.input[0]
    ttype = inp.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type).name
    shape = [d.dim_param or d.dim_value for d in ttype.shape.dim]
    return inp.name, dtype, shape


def onnx_precision(path: str | Path) -> str:
    """``int8`` for a quantised graph, ``fp16`` for float16 weights, else ``fp32``."""
    proto = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in proto.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
              "MatMulInteger"}:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer):
        return "fp16"
    return "fp32"


def onnx_params(path: str | Path) -> int:
    """Number of weight elements in the graph's initialisers (quantisation scales and zero points excluded)."""
    proto = onnx.load(str(path), load_external_data=False)
    return sum(_numel(t.dims) for t in proto.graph.initializer
               if _numel(t.dims) > 1 and not t.name.endswith(("_scale", "_zero_point")))


def _numel(dims: Iterable[int]) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n
