"""DINOv2, DINOv3 and SigLIP 2 teachers read their authors' checkpoint layouts and reproduce the embeddings.

Each file is synthesised from a random timm/open_clip model (one block deep, so the test stays cheap) by
writing its weights in the official layout by hand; the teacher built from that file through the
registered spec (only ``depth`` or the open_clip config is made tiny) must give the source model's output.
The hub tests run a real local HTTP server standing in for the hub through ``HF_ENDPOINT``.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub.constants
import open_clip
import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from compressor.errors import CompressorError
from compressor.models.teachers import TEACHERS, TeacherSpec, build_teacher
from tests.models.test_teachers import _batch, _randomize, _same


def _one_block(name: str) -> TeacherSpec:
    spec = TEACHERS.get(name)
    return replace(spec, arch_kwargs={**spec.arch_kwargs, "depth": 1})


@pytest.mark.parametrize("reg", [False, True], ids=["dinov2", "dinov2_reg4"])
def test_dinov2_official_file(reg: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``dinov2_vits14[_reg4]_pretrain.pth``: flat, ``mask_token``, ``register_tokens``, pos_embed for 518 px.

    In the official model the CLS token gets ``pos_embed[:, 0]`` added and the registers are inserted after
    it with no position embedding; timm folds the CLS position into ``cls_token`` (``no_embed_class``).
    """
    arch = f"vit_small_patch14{'_reg4' if reg else ''}_dinov2"
    ref = _randomize(timm.create_model(arch, depth=1, num_classes=0, img_size=518))
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    if reg:
        cls_pos = torch.randn(1, 1, 384)
        with torch.no_grad():  # the sum timm's converter computes, in the same float32 arithmetic
            ref.cls_token.add_(cls_pos)
        state["pos_embed"] = torch.cat([cls_pos, state["pos_embed"]], dim=1)
        state["register_tokens"] = state.pop("reg_token")
    assert list(state["pos_embed"].shape) == [1, 1370, 384]  # the official 37x37 grid + CLS
    state["mask_token"] = torch.randn(1, 384)
    path = tmp_path / f"dinov2_vits14{'_reg4' if reg else ''}_pretrain.pth"
    torch.save(state, path)
    name = f"dinov2-vit-s14{'-reg' if reg else ''}"
    native = build_teacher(_one_block(name), weights=str(path), image_size=518)
    _same(native, ref, _batch(518, 1))
    with caplog.at_level(logging.INFO, logger="compressor"):
        teacher = build_teacher(_one_block(name), weights=str(path))
    assert teacher.spec.image_size == 224 and "224 px input (its default)" in caplog.text
    assert "trained at 518 px" in caplog.text and "--teacher-image-size 518" in caplog.text
    dyn = timm.create_model(arch, depth=1, num_classes=0, img_size=518, dynamic_img_size=True).eval()
    dyn.load_state_dict(ref.state_dict())  # timm resamples the 37x37 grid to 16x16 per call
    _same(teacher, dyn, _batch(224))


def test_dinov3_official_file(tmp_path: Path) -> None:
    """``dinov3_vits16_pretrain_lvd1689m-*.pth``: ``storage_tokens``, ``ls1.gamma``, one ``qkv.bias`` with a
    ``bias_mask`` that zeroes the key part, ``rope_embed.periods`` and ``mask_token`` (facebookresearch/dinov3)."""
    ref = _randomize(timm.create_model("vit_small_patch16_dinov3_qkvb", depth=1, num_classes=0,
                                       global_pool="token"))
    official: dict[str, torch.Tensor] = {}
    for k, v in ref.state_dict().items():
        if k.endswith("attn.q_bias"):
            v_bias = ref.state_dict()[k.replace("q_bias", "v_bias")]
            official[k.replace("q_bias", "qkv.bias")] = torch.cat([v, torch.randn(384), v_bias])
            official[k.replace("q_bias", "qkv.bias_mask")] = torch.cat([torch.ones(384), torch.zeros(384),
                                                                        torch.ones(384)])
        elif not k.endswith("attn.v_bias"):
            k = k.replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")
            official[k.replace("reg_token", "storage_tokens")] = v
    official |= {"mask_token": torch.randn(1, 384), "rope_embed.periods": torch.rand(16)}
    path = tmp_path / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth"
    torch.save(official, path)
    teacher = build_teacher(_one_block("dinov3-vit-s16"), weights=str(path))
    assert teacher.spec.image_size == 224 and teacher.embed_dim == 384
    _same(teacher, ref, _batch(224))
    _same(teacher, ref, _batch(64))  # RoPE: any size, nothing to resample


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """ViT-B-16-SigLIP2's config with timm's tiny ``test_vit`` tower (160 px) and a tiny text tower."""
    cfg = copy.deepcopy(open_clip.get_model_config("ViT-B-16-SigLIP2"))
    cfg["vision_cfg"] |= {"timm_model_name": "test_vit", "image_size": 160}
    cfg["embed_dim"] = 64
    cfg["text_cfg"] |= {"width": 32, "heads": 2, "layers": 1, "vocab_size": 100, "hf_tokenizer_name": None}
    path = tmp_path_factory.mktemp("siglipcfg") / "tiny-test-siglip2.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return "tiny-test-siglip2"


def test_siglip2_open_clip_file(tiny_siglip: str, tmp_path: Path) -> None:
    ref = _randomize(open_clip.create_model(tiny_siglip))
    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    spec = replace(TEACHERS.get("siglip2-vit-b16"), arch=tiny_siglip, embed_dim=64)
    teacher = build_teacher(spec, weights=str(path), image_size=160)
    _same(teacher, lambda x: ref.encode_image(x, normalize=True), _batch(160))
    assert "logit_bias" in teacher.info["dropped_keys"] and "text.token_embedding.weight" in teacher.info[
        "dropped_keys"]
    assert spec.mean == (0.5, 0.5, 0.5) and spec.normalize
    small = build_teacher(spec, weights=str(path), image_size=64)  # trunk.pos_embed resampled 10x10 -> 4x4
    trunk = timm.create_model("test_vit", global_pool="map", num_classes=0, dynamic_img_size=True).eval()
    trunk.load_state_dict({k[len("trunk."):]: v for k, v in ref.visual.state_dict().items()})
    _same(small, lambda x: nn.functional.normalize(trunk(x), dim=-1), _batch(64))


class _Hub(BaseHTTPRequestHandler):
    """A stand-in hub: every repository whose name contains ``gated`` is gated, anything else is missing."""

    seen: list[str] = []  # noqa: RUF012 -- shared with the test on purpose

    def _reply(self) -> None:
        type(self).seen.append(self.path)
        gated = "gated" in self.path
        self.send_response(401 if gated else 404)
        self.send_header("X-Error-Code", "GatedRepo" if gated else "EntryNotFound")
        self.send_header("X-Error-Message", "Access to this repo is restricted" if gated else "not found")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "5")
    for var in ("HF_HUB_OFFLINE", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    _Hub.seen.clear()
    yield url
    server.shutdown()


def test_gated_weights_name_the_token_and_manual_download(local_hub: str) -> None:
    spec = replace(TEACHERS.get("dinov3-vit-s16"), sources=("hf-hub:org/gated-dinov3/model.safetensors",))
    with pytest.raises(CompressorError, match=r"gated.*HF_TOKEN") as err:
        build_teacher(spec)
    msg = str(err.value)
    assert f"{local_hub}/org/gated-dinov3" in msg and "dinov3_vits16_pretrain" in msg and "--teacher-weights" in msg
    assert any("gated-dinov3" in p for p in _Hub.seen)  # HF_ENDPOINT was used, read at call time


def test_cannot_fetch_names_repository_and_file(local_hub: str) -> None:
    with pytest.raises(CompressorError, match="cannot fetch") as err:
        build_teacher("dinov2-vit-s14")
    msg = str(err.value)
    assert f"{local_hub}/timm/vit_small_patch14_dinov2.lvd142m/resolve/main/model.safetensors" in msg
    assert "--teacher-weights PATH" in msg and "\n" not in msg
    assert any("vit_small_patch14_dinov2" in p for p in _Hub.seen)


@pytest.mark.parametrize(("name", "arch", "tag"), [("clip-vit-b16", "ViT-B-16", "openai"),
                                                   ("clip-vit-l14", "ViT-L-14", "openai"),
                                                   ("siglip2-vit-b16", "ViT-B-16-SigLIP2", "webli")])
def test_named_open_clip_teachers_match_open_clips_own_table(name: str, arch: str, tag: str) -> None:
    # the zoo writes these out as data (listing them needs no open_clip); open_clip's table is the reference
    from compressor.models.teachers import open_clip_spec

    zoo = TEACHERS.get(name)
    assert zoo == open_clip_spec(arch, tag, name=name, description=zoo.description)
