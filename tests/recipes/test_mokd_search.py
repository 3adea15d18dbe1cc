"""MOKD's cross-attention feature search against an independent float64 NumPy reading of METHODS.md.

The reference below re-derives the T-Head from its parameters alone (pre-norm transformer blocks:
LayerNorm → multi-head self-attention with a qkv bias → residual, LayerNorm → GELU MLP → residual; then
the query position dropped, LayerNorm, mean over the patch tokens, the weight-normalised projection), so
it shares no code path with ``MOKDNet.search``/``THead.forward``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from compressor.engine.recipe import DataInfo, make_config
from compressor.models.students import build_student
from compressor.recipes.mokd import MOKD

SMALL = {"out_dim": 16, "head_hidden_dim": 32, "head_bottleneck_dim": 16, "n_local_crops": 2, "thead_depth": 2,
         "thead_heads": 3}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:  # the exact (erf) GELU
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _thead_np(p: dict[str, np.ndarray], tokens: np.ndarray, query: np.ndarray, depth: int, heads: int) -> np.ndarray:
    """Search: ``[query; tokens]`` through the blocks, query dropped, LayerNorm, mean-pool, W-normalised linear."""
    x = np.concatenate([query[:, None], tokens], axis=1)  # (B, 1+P, D)
    b, n, d = x.shape
    hd = d // heads
    for i in range(depth):
        k = f"blocks.{i}."
        h = _layer_norm(x, p[k + "norm1.weight"], p[k + "norm1.bias"])
        qkv = h @ p[k + "attn.qkv.weight"].T + p[k + "attn.qkv.bias"]
        q, kk, v = (qkv[..., j * d:(j + 1) * d].reshape(b, n, heads, hd).transpose(0, 2, 1, 3) for j in range(3))
        att = _softmax(q @ kk.transpose(0, 1, 3, 2) / math.sqrt(hd))
        o = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        x = x + o @ p[k + "attn.proj.weight"].T + p[k + "attn.proj.bias"]
        h = _layer_norm(x, p[k + "norm2.weight"], p[k + "norm2.bias"])
        h = _gelu(h @ p[k + "mlp.fc1.weight"].T + p[k + "mlp.fc1.bias"])
        x = x + h @ p[k + "mlp.fc2.weight"].T + p[k + "mlp.fc2.bias"]
    pooled = _layer_norm(x[:, 1:], p["norm.weight"], p["norm.bias"]).mean(1)
    w = p["last.weight"]
    return pooled @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T


def test_search_matches_an_independent_float64_transformer() -> None:
    torch.manual_seed(0)
    cfg = make_config(MOKD, SMALL)
    recipe = MOKD(cfg, build_student("resnet10t", 32), peer=build_student("vit_tiny_patch16_224", 32),
                  data=DataInfo(10, 4))
    g = torch.Generator().manual_seed(3)
    for key in (recipe.vit_key, recipe.cnn_key):  # both teachers search: the ViT's patches and the CNN's tokens
        teacher = recipe.ema[key]
        with torch.no_grad():  # move the parameters off their init so every term matters
            for prm in teacher.thead.parameters():
                prm.add_(0.05 * torch.randn(prm.shape, generator=g))
        d = teacher.thead.norm.normalized_shape[0]
        tokens = torch.randn(3, 5, d, generator=g)
        queries = torch.randn(2 * 3, d, generator=g)  # two local crops per image, crop-major
        out = teacher.search(tokens, queries)
        params = {k: _np(v) for k, v in teacher.thead.state_dict().items()}
        for v in range(2):
            expected = _thead_np(params, _np(tokens), _np(queries[v * 3:(v + 1) * 3]), SMALL["thead_depth"],
                                 SMALL["thead_heads"])
            np.testing.assert_allclose(_np(out[v * 3:(v + 1) * 3]), expected, rtol=1e-4, atol=1e-5)
        # the query attends to the patches and they to it: another query changes the searched target
        assert not torch.allclose(teacher.search(tokens, torch.randn(2 * 3, d, generator=g)), out)
