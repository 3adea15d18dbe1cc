"""``hf-hub:org/name`` students and teachers, resolved offline from a Hugging Face cache the tests lay out.

The repositories are written by timm's own ``save_for_hf`` (what ``push_to_hub`` uploads: ``config.json`` +
``model.safetensors``) into the layout huggingface_hub keeps (``models--org--name/blobs``, ``snapshots/<rev>``
linking to the blobs, ``refs/main``). The reference for every embedding is the written timm model itself,
its pooled pre-logits features.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
from timm.models import save_for_hf
from torch import nn

from compressor.errors import CompressorError
from compressor.models.saved import load_encoder
from compressor.models.students import build_student
from compressor.models.teachers import build_teacher


def write_hub_repo(cache: Path, repo: str, folder: Path) -> str:
    """Lay the files of ``folder`` out in ``cache`` as huggingface_hub stores a download of ``repo``'s main
    branch: content-addressed blobs, a snapshot of relative links to them, ``refs/main``. Returns the revision."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    rev = hashlib.sha1(b"".join(hashlib.sha256(d).digest() for d in files.values())).hexdigest()
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / rev
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(rev)
    return rev


def randomized(arch: str, seed: int, **kw: object) -> nn.Module:
    """A timm model (with its classifier) whose weights and BN statistics are all non-default."""
    torch.manual_seed(seed)
    model = timm.create_model(arch, **kw)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if name.endswith("running_var") else torch.randn_like(t) * 0.05)
    return model.eval()


def push(cache: Path, repo: str, model: nn.Module) -> str:
    """What ``model.push_to_hub(repo)`` uploads, as a later download would leave it in ``cache``."""
    with tempfile.TemporaryDirectory() as tmp:
        save_for_hf(model, tmp, safe_serialization=True)
        return write_hub_repo(cache, repo, Path(tmp))


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference embedding: timm's pooled features before the classifier."""
    with torch.no_grad():
        return model.forward_head(model.forward_features(x), pre_logits=True)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache named by ``HF_HUB_CACHE``, offline."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.mark.parametrize("variable", ["HF_HUB_CACHE", "HF_HOME"])
def test_hub_student_starts_from_the_repository_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    home = tmp_path / "hf"
    cache = home / "hub"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv(variable, str(home if variable == "HF_HOME" else cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = randomized("resnet10t", 0, num_classes=7)
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.3, 0.4)}
    rev = push(cache, "org/stu", model)
    student = build_student("hf-hub:org/stu", 32, stem="auto").eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(student(x), features(model, x), rtol=0, atol=1e-6)
    assert student.arch == "hf-hub:org/stu" and student.stem == "imagenet" and student.embed_dim == 512
    assert student.spec.mean == (0.5, 0.4, 0.3) and student.spec.std == (0.2, 0.3, 0.4)  # the repository's input
    info = student.weights_info
    assert info["weights"] == "hf-hub:org/stu/model.safetensors" and info["revision"] == rev
    assert info["architecture"] == "resnet10t" and info["dropped_keys"] == ["fc.bias", "fc.weight"]
    random_init = build_student("hf-hub:org/stu", 32, pretrained=False).eval()
    with torch.no_grad():
        assert not torch.allclose(random_init(x), student(x))


def test_unreachable_hub_reads_the_cache(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not offline by the variable, but the hub does not answer: the probe fails fast, the cache is used."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with socket.socket() as s:  # a port nothing listens on: connections are refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    model = randomized("resnet10t", 1, num_classes=3)
    push(hub, "org/unreach", model)
    start = time.monotonic()
    student = build_student("hf-hub:org/unreach", 24).eval()
    assert time.monotonic() - start < 10
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(student(x), features(model, x), rtol=0, atol=1e-6)


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stand-in for the hub's file endpoint on localhost (``HF_ENDPOINT``): ``/org/name/resolve/REV/FILE``
    answers with the file, its commit and ETag as huggingface.co does; files live in ``<yield>/org/name/``."""
    root = tmp_path / "served"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.answer(body=False)

        def do_GET(self) -> None:
            self.answer(body=True)

        def answer(self, body: bool) -> None:
            parts = self.path.split("?")[0].strip("/").split("/", 4)  # org, name, "resolve", revision, file
            repo = root.joinpath(*parts[:2])
            f = repo / parts[4] if len(parts) == 5 else repo / "-"
            if not f.is_file():
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound" if repo.is_dir() else "RepoNotFound")
                self.end_headers()
                return
            data = f.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", "c" * 40)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield root
    finally:
        server.shutdown()
        server.server_close()


def test_online_download_fills_the_cache_that_offline_reads(
    hub: Path, local_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online, huggingface_hub downloads into ``HF_HUB_CACHE`` the layout ``write_hub_repo`` lays out; offline
    afterwards, the same model comes out of it."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    model = randomized("resnet10t", 6, num_classes=3)
    save_for_hf(model, local_hub / "org" / "online", safe_serialization=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(build_student("hf-hub:org/online", 32).eval()(x), features(model, x), rtol=0, atol=0)
    root = hub / "models--org--online"
    assert (root / "refs" / "main").read_text() == "c" * 40
    assert sorted(p.name for p in (root / "snapshots" / ("c" * 40)).iterdir()) == ["config.json", "model.safetensors"]
    assert all((root / "snapshots" / ("c" * 40) / f).is_symlink() for f in ("config.json", "model.safetensors"))
    with pytest.raises(CompressorError, match=r"cannot fetch config.json of hf-hub:org/nowhere from http://127"):
        build_student("hf-hub:org/nowhere", 32)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (local_hub / "org" / "online" / "model.safetensors").unlink()  # what is served no longer matters
    with torch.no_grad():
        torch.testing.assert_close(build_student("hf-hub:org/online", 32).eval()(x), features(model, x), rtol=0, atol=0)


def test_vit_repository_keeps_its_model_args(hub: Path) -> None:
    """``model_args`` of the config (a ViT at 32 px with its own width) build the architecture."""
    model = randomized("vit_tiny_patch16_224", 2, num_classes=5, img_size=32, embed_dim=48, depth=2, num_heads=2)
    push(hub, "org/vit", model)
    cfg = json.loads(next(hub.glob("models--org--vit/snapshots/*/config.json")).read_text())
    assert cfg["model_args"]["img_size"] == [32, 32] and cfg["model_args"]["embed_dim"] == 48  # timm wrote them
    student = build_student("hf-hub:org/vit").eval()
    assert student.spec.image_size == 32 and student.embed_dim == 48
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(student(x), features(model, x), rtol=0, atol=1e-5)


def test_hub_teacher_is_the_repository_model(hub: Path) -> None:
    model = randomized("resnet10t", 3, num_classes=4)
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, 40, 40)}
    push(hub, "org/tea", model)
    teacher = build_teacher("hf-hub:org/tea")
    assert teacher.spec.image_size == 40 and teacher.embed_dim == 512
    assert teacher.info["weights"] == "pretrained:hf-hub:org/tea/model.safetensors" and not teacher.info["random"]
    assert teacher.info["dropped_keys"] == ["fc.bias", "fc.weight"]
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), features(model, x), rtol=0, atol=1e-6)


def test_absent_repository_is_one_line_naming_it_and_the_cache(cli, hub: Path, tmp_path: Path) -> None:
    code, _, err = cli("distill", "--student", "hf-hub:org/absent", "--recipe", "simclr", "--data", "synthetic",
                       "--max-steps", "1", "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    line = err.strip()
    assert "\n" not in line and "hf-hub:org/absent" in line and str(hub / "models--org--absent") in line
    assert "HF_HUB_OFFLINE" in line and "hf download org/absent" in line
    # the config alone in the cache (weights never downloaded): the line names the weights file
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps({"architecture": "resnet10t", "num_classes": 0}))
        write_hub_repo(hub, "org/noweights", Path(tmp))
    with pytest.raises(CompressorError, match=r"hf-hub:org/noweights: model.safetensors or pytorch_model.bin is "
                                              r"not in the Hugging Face cache"):
        build_student("hf-hub:org/noweights", 32)
    with pytest.raises(CompressorError, match=r"not a hub model name; write hf-hub:ORG/NAME"):
        build_student("hf-hub:resnet18", 32)
    code, _, err = cli("distill", "--student", "resnet10t", "--teacher", "hf-hub:org/absent", "--data", "synthetic",
                       "--max-steps", "1", "--out", tmp_path / "run2")
    assert code == 2 and "\n" not in err.strip() and str(hub / "models--org--absent") in err


def test_distill_with_hub_student_and_teacher_reloads_offline(hub: Path, tmp_path: Path) -> None:
    from compressor.engine.config import TrainConfig
    from compressor.engine.trainer import train

    stu_rev = push(hub, "org/stu", randomized("resnet10t", 4, num_classes=10))
    teacher = randomized("resnet10t", 5, num_classes=10)
    teacher.pretrained_cfg = {**teacher.pretrained_cfg, "input_size": (3, 48, 48)}  # the teacher's view: 48 px
    push(hub, "org/tea", teacher)
    cfg = TrainConfig(student="hf-hub:org/stu", teacher="hf-hub:org/tea", data="synthetic", max_images=16,
                      batch_size=4, image_size=32, max_steps=2, out=str(tmp_path / "run"), seed=0)
    run = train(cfg, progress=False)
    from compressor.engine.trainer import default_run_dir

    default = default_run_dir(TrainConfig(student="hf-hub:org/stu", data="synthetic"))
    assert default.parent.name == "runs" and ":" not in default.name and "org--stu" in default.name
    info = json.loads((run / "run.json").read_text())
    assert info["student"]["weights"] == "hf-hub:org/stu/model.safetensors"
    assert info["student"]["revision"] == stu_rev
    assert info["teachers"][0]["name"] == "hf-hub:org/tea"
    assert info["teachers"][0]["weights"] == "pretrained:hf-hub:org/tea/model.safetensors"
    assert json.loads((run / "student.json").read_text())["arch"] == "hf-hub:org/stu"
    # eval/export rebuild the architecture from the cached config.json (offline), with the run's weights
    enc = load_encoder(run)
    from safetensors.torch import load_file

    saved = load_file(str(run / "student.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in enc.backbone.state_dict().items())
    # without the cache the rebuild is one line naming the repository and the cache folder
    (hub / "models--org--stu").rename(hub.parent / "moved")
    with pytest.raises(CompressorError, match=r"hf-hub:org/stu: config.json is not in the Hugging Face cache .*"
                                              r"models--org--stu \(HF_HUB_OFFLINE is set\)"):
        load_encoder(run)
