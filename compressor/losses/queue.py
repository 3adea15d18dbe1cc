"""A FIFO queue of embeddings (MoCo, He et al. 2020; SEED, Fang et al. 2021), gathered across DDP ranks.

The queue is a module whose state lives in registered buffers (``queue`` K×D and ``ptr``), so it is
saved in checkpoints and moved with ``.to(device)``. ``enqueue(x)`` writes the rows of ``x`` at
``ptr`` onwards, wrapping around the end (the oldest rows are overwritten first), and advances
``ptr`` by ``len(x)`` modulo K. Under ``torch.distributed`` the rows of every rank are gathered
first (``all_gather``, concatenated in rank order), so all ranks hold the same queue.

Example::

    q = EmbeddingQueue(size=4096, dim=128)
    logits = s @ q.queue.T          # read
    q.enqueue(t.detach())           # after the step (never inside the graph that reads the queue)
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def gather_from_ranks(x: torch.Tensor) -> torch.Tensor:
    """``x`` from every rank concatenated in rank order (``x`` itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class EmbeddingQueue(nn.Module):
    """K past embeddings of dimension D, oldest overwritten first.

    Initialised, as in the MoCo and SEED code, with random unit vectors: until it has been filled
    once, the queue's unfilled rows act as random negatives.
    """

    queue: torch.Tensor
    ptr: torch.Tensor

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        self.register_buffer("queue", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.queue.shape[0]

    @torch.no_grad()
    def enqueue(self, x: torch.Tensor) -> None:
        """Append the rows of ``x`` (gathered from all ranks under DDP), overwriting the oldest."""
        x = gather_from_ranks(x.detach()).to(self.queue.dtype)
        k = self.size
        if x.shape[0] >= k:  # more new rows than room: only the newest K survive, in order
            self.queue.copy_(x[-k:])
            self.ptr.fill_(0)
            return
        ptr = int(self.ptr)
        idx = (ptr + torch.arange(x.shape[0], device=self.queue.device)) % k
        self.queue[idx] = x
        self.ptr.fill_((ptr + x.shape[0]) % k)
