"""SEED: the loss against a float64 NumPy recomputation from METHODS.md, the FIFO queue, DDP gathering."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from compressor.engine.recipe import DataInfo, make_config
from compressor.losses.queue import EmbeddingQueue
from compressor.models.students import build_student
from compressor.recipes.seed import SEED, seed_loss
from tests.conftest import frozen_teacher


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(1, keepdims=True)
    return a - np.log(np.exp(a).sum(1, keepdims=True))


def _seed_np(s: np.ndarray, t: np.ndarray, q: np.ndarray, tau_s: float, tau_t: float) -> float:
    """METHODS.md: student logits [s·t, s·Q]/τ_s, target softmax([t·t, t·Q]/τ_t), mean cross-entropy."""
    student = np.concatenate([np.einsum("bd,bd->b", s, t)[:, None], s @ q.T], 1) / tau_s
    teacher = np.concatenate([np.einsum("bd,bd->b", t, t)[:, None], t @ q.T], 1) / tau_t
    target = np.exp(_log_softmax(teacher))
    return float(-(target * _log_softmax(student)).sum(1).mean())


@pytest.mark.parametrize(("tau_t", "spread"), [(1e-4, 1.0), (0.5, 1.0), (0.05, 0.1)])
def test_loss_matches_float64_recomputation(tau_t: float, spread: float) -> None:
    rng = np.random.default_rng(7)
    b, k, d = 6, 20, 16
    t = _unit(rng.normal(size=(b, d)))
    q = _unit(np.concatenate([t[:3] + spread * rng.normal(size=(3, d)), rng.normal(size=(k - 3, d))]))
    s = _unit(t + 0.7 * rng.normal(size=(b, d)))
    ours = seed_loss(*(torch.from_numpy(a) for a in (s, t, q)), temperature_student=0.2, temperature_teacher=tau_t)
    assert ours.dtype == torch.float64
    assert ours.item() == pytest.approx(_seed_np(s, t, q, 0.2, tau_t), rel=1e-10)


def test_sharp_teacher_target_is_the_positive() -> None:
    """With τ_t = 1e-4 the target is one-hot on t·t = 1, so the loss is the InfoNCE of (s, t) vs Q."""
    rng = np.random.default_rng(1)
    t, q = _unit(rng.normal(size=(4, 8))), _unit(rng.normal(size=(10, 8)))
    s = _unit(rng.normal(size=(4, 8)))
    student = np.concatenate([np.einsum("bd,bd->b", s, t)[:, None], s @ q.T], 1) / 0.2
    expected = float(-_log_softmax(student)[:, 0].mean())
    assert seed_loss(*(torch.from_numpy(a) for a in (s, t, q))).item() == pytest.approx(expected, rel=1e-9)


def test_queue_is_fifo_with_wrap_around() -> None:
    q = EmbeddingQueue(size=5, dim=2)
    rows = torch.arange(2 * 9, dtype=torch.float32).reshape(9, 2)
    q.enqueue(rows[0:2])
    assert torch.equal(q.queue[:2], rows[0:2]) and int(q.ptr) == 2
    q.enqueue(rows[2:4])
    assert torch.equal(q.queue[:4], rows[0:4]) and int(q.ptr) == 4
    q.enqueue(rows[4:7])  # wraps: rows 4 → slot 4, rows 5, 6 → slots 0, 1 (the oldest, rows 0, 1, go)
    assert torch.equal(q.queue, torch.stack([rows[5], rows[6], rows[2], rows[3], rows[4]]))
    assert int(q.ptr) == 2
    # reading from ptr onwards gives the rows oldest first
    order = torch.roll(q.queue, -int(q.ptr), dims=0)
    assert torch.equal(order, rows[2:7])
    q.enqueue(rows[0:9])  # more rows than slots: only the newest 5, oldest first from ptr
    assert torch.equal(torch.roll(q.queue, -int(q.ptr), dims=0), rows[4:9])


def test_queue_is_checkpointed_and_initialised_to_unit_vectors() -> None:
    q = EmbeddingQueue(size=7, dim=3)
    assert torch.allclose(q.queue.norm(dim=1), torch.ones(7))
    q.enqueue(torch.ones(3, 3))
    state = q.state_dict()
    assert set(state) == {"queue", "ptr"}
    fresh = EmbeddingQueue(size=7, dim=3)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.queue, q.queue) and int(fresh.ptr) == 3


def test_step_enqueues_the_teacher_embeddings_after_the_step(teacher) -> None:
    torch.manual_seed(0)
    student = build_student("resnet10t", 32)  # 512-d, the teacher (resnet10t) 512-d: no projection
    recipe = SEED(make_config(SEED, {"queue_size": 16}), student, teachers=[teacher], data=DataInfo(0, 4))
    assert recipe.teacher_proj is None
    recipe.train()
    batch = {"x": torch.randn(4, 3, 32, 32), "t": torch.randn(4, 3, 40, 40)}
    before = recipe.queue.queue.clone()
    recipe.step(batch).loss.backward()
    assert torch.equal(recipe.queue.queue, before)  # not touched while the graph reads it
    recipe.on_step_end(0, 1)
    expected = torch.nn.functional.normalize(teacher(batch["t"]), dim=1)
    assert torch.allclose(recipe.queue.queue[:4], expected, atol=1e-6)
    assert int(recipe.queue.ptr) == 4
    assert "queue.queue" in recipe.trainable_state_dict()


def test_different_widths_use_a_fixed_128d_projection(teacher) -> None:
    student = build_student("resnet18", 32)  # 512-d vs a 256-d head: widths differ
    teacher.embed_dim = 256  # only the widths matter for the heads
    recipe = SEED(make_config(SEED, {"queue_size": 8}), student, teachers=[teacher], data=DataInfo(0, 4))
    assert recipe.head[-1].out_features == 128 and recipe.queue.queue.shape == (8, 128)
    assert recipe.teacher_proj is not None and not recipe.teacher_proj.requires_grad
    assert recipe.teacher_proj.shape == (128, 256)
    assert "teacher_proj" in recipe.trainable_state_dict()
    assert all(p is not recipe.teacher_proj for p in recipe.parameters())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        q = EmbeddingQueue(size=10, dim=3)
        for step in range(2):  # 2 steps × 2 ranks × 3 rows = 12 rows: wraps a 10-row queue
            q.enqueue(torch.full((3, 3), float(100 * step + 10 * rank)) + torch.arange(3.0)[:, None])
        torch.save({"queue": q.queue, "ptr": q.ptr}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_enqueue_gathers_all_ranks_in_rank_order(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rows = [torch.full((3, 3), float(100 * step + 10 * rank)) + torch.arange(3.0)[:, None]
            for step in range(2) for rank in range(2)]
    expected = torch.cat(rows)[-10:]  # step 0 rank 0, rank 1, step 1 rank 0, rank 1; the newest 10
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert int(got["ptr"]) == 12 % 10
        assert torch.equal(torch.roll(got["queue"], -int(got["ptr"]), dims=0), expected)


def test_queue_length_rule() -> None:
    from compressor.recipes.seed import queue_size_for

    assert queue_size_for(1_281_167, 256) == 65536  # ImageNet: the authors' K
    assert queue_size_for(10_000, 128) == 4992  # half an epoch, a whole number of batches
    assert queue_size_for(100, 128) == 128  # at least one batch
    assert make_config(SEED).queue_size == 0
    recipe = SEED(make_config(SEED), build_student("resnet10t", 32), teachers=[frozen_teacher()],
                  data=DataInfo(10, 64, num_images=1000))
    assert recipe.queue.queue.shape[0] == 448


def test_student_and_teacher_see_the_same_augmented_image(teacher) -> None:
    from PIL import Image

    student = build_student("resnet10t", 40)  # same size and normalisation as the teacher fixture
    recipe = SEED(make_config(SEED, {"queue_size": 8}), student, teachers=[teacher], data=DataInfo(0, 4))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8))
    for seed in range(3):
        torch.manual_seed(seed)
        out = recipe.views()(img)
        torch.testing.assert_close(out["x"], out["t"])
