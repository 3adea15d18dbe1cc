"""Data-parallel training under ``torchrun``: PyTorch's own DDP, no home-made launcher.

``torchrun --nproc_per_node N compress distill …`` starts N copies of the command with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment. :func:`context_from_env` reads them, and
:meth:`DistContext.init` joins the process group (NCCL on CUDA, gloo on CPU). A run started without
torchrun gets a one-process context where every helper below is a no-op, so the engine has one
code path.

The contract that makes N processes equal one process with the same global batch:

* ``--batch-size`` is the *global* batch. Each epoch's permutation is drawn from ``(seed, epoch)``
  exactly as in one process, and rank ``r`` takes rows ``[r·B/N, (r+1)·B/N)`` of every global batch
  (``compressor.data.loader``); each image's augmentation is seeded by its index, not by the rank.
* BatchNorm layers of the trained models see the global batch (:func:`convert_batchnorm`):
  ``nn.SyncBatchNorm`` on CUDA; on CPU, where PyTorch's SyncBatchNorm has no kernels, the small
  autograd-aware :class:`GlobalBatchNorm` below.
* A loss that is a statistic of the whole batch (NT-Xent's negatives, dCor, a variance hinge) is
  computed from embeddings gathered with :func:`gather_with_grad`. Every rank then holds the same
  global loss ``L``; the gather's backward sums ``∂L/∂z_r`` over the N ranks and DDP averages the
  gradients over N, so each parameter receives exactly ``∂L/∂θ``. A loss that is a mean of per-image
  terms needs no gather: DDP's average of the per-rank means is the global mean.
"""

from __future__ import annotations

import datetime
import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from compressor.errors import CompressorError

log = logging.getLogger("compressor")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files, logs and the progress bar."""
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """On CUDA each process drives the GPU of its local rank."""
        if self.enabled and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def init(self, device: torch.device) -> None:
        """Join the process group (idempotent): NCCL for CUDA, gloo for CPU."""
        if not self.enabled or dist.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        timeout = datetime.timedelta(seconds=float(os.environ.get("COMPRESS_DIST_TIMEOUT", 1800)))
        dist.init_process_group(backend=backend, timeout=timeout)
        log.info("rank %d of %d joined the %s process group", self.rank, self.world_size, backend)


def context_from_env() -> DistContext:
    """The torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or one process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise CompressorError(f"malformed torchrun environment ({err}); launch with torchrun or unset "
                              "RANK/WORLD_SIZE/LOCAL_RANK") from None
    if world > 1 and not (0 <= rank < world):
        raise CompressorError(f"RANK={rank} is outside WORLD_SIZE={world}; launch with torchrun")
    return DistContext(rank=rank if world > 1 else 0, world_size=max(1, world), local_rank=local if world > 1 else 0)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


# -- collectives used by the loop and the recipes ----------------------------------------------------
def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` of every rank concatenated in rank order, differentiable (``x`` itself in one process).

    With the global batch split in rank order, the result has the rows in the order one process
    would see them. The backward sums the incoming gradients of all ranks into each rank's own rows.
    """
    if not active():
        return x
    return _AllGather.apply(x)


class _AllGather(torch.autograd.Function):
    """All-gather whose backward sums the gradients of all ranks and keeps this rank's rows.

    (``torch.distributed.nn.functional`` does the same but is deprecated; gloo lacks reduce-scatter,
    so the backward is an all-reduce followed by a slice.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the backward sums the gradients over ranks as well."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over the ranks, differentiable (``x`` itself in one process)."""
    return _AllReduceSum.apply(x) if active() else x


def all_finite(x: torch.Tensor) -> bool:
    """Whether ``x`` is finite on every rank (a collective: every rank must call it)."""
    ok = torch.isfinite(x).all()
    if active():
        flag = ok.to(torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = flag.bool()
    return bool(ok)


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank (agreeing on a stop request)."""
    if not active():
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each logged number over the ranks (same keys on every rank)."""
    if not active() or not values:
        return values
    keys = list(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / dist.get_world_size()).tolist(), strict=True))


def gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable, small: RNG states), on every rank."""
    if not active():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# -- global-batch BatchNorm ----------------------------------------------------------------------------
class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch on CPU (gloo), where ``nn.SyncBatchNorm`` has no kernels.

    Two all-reduces per layer (the sum, then the centred sum of squares, as one process computes
    them), differentiable, so the gradient of the statistics flows to every rank.
    Same parameters and buffers (and state-dict keys) as the BatchNorm it replaces; outside
    training or outside a process group it is the plain BatchNorm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        sums = all_reduce_with_grad(torch.cat([x.sum(dims), n]))
        count = sums[-1].detach()
        mean = sums[:-1] / count
        xc = x - mean.view(shape)
        var = all_reduce_with_grad((xc * xc).sum(dims)) / count
        y = xc * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr]  # a registered buffer
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)  # type: ignore[arg-type]  # a registered buffer
                unbiased = var.detach() * count / (count - 1).clamp_min(1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of the trained (not frozen) sub-modules computes global-batch statistics."""
    if device.type == "cuda":
        return _replace_bn(module, nn.SyncBatchNorm)
    return _replace_bn(module, GlobalBatchNorm)


def _replace_bn(module: nn.Module, cls: type[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
    if getattr(module, "_frozen", False):  # a frozen teacher is in eval mode: running statistics only
        return module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, cls):
        new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                new.weight = module.weight
                new.bias = module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _replace_bn(child, cls))
    return module


# -- DDP --------------------------------------------------------------------------------------------
class _RecipeStep(nn.Module):
    """``forward(batch) = recipe.step(batch)``, so DDP sees the step as its module's forward."""

    def __init__(self, recipe: nn.Module) -> None:
        super().__init__()
        self.recipe = recipe

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Mapping[str, float | torch.Tensor]]:
        out = self.recipe.step(batch)  # type: ignore[operator]  # the recipe interface
        return out.loss, out.logs


def wrap_step(recipe: nn.Module, ctx: DistContext, device: torch.device):
    """A callable ``batch -> (loss, logs)``: the recipe's step, inside DDP when distributed.

    One DDP over the whole recipe covers peer recipes (two trained models, two optimisers) too:
    DDP reduces the gradient of every parameter that requires one; frozen teachers have none.
    ``find_unused_parameters`` because some recipes leave heads out of some steps;
    ``forward_sync_buffers=False`` because buffers (BN statistics, queues, centres) are updated from
    global-batch quantities and so stay equal on every rank without a per-step broadcast.
    """
    step = _RecipeStep(recipe)
    if not ctx.enabled:
        return step
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    params = inspect.signature(DistributedDataParallel).parameters  # torch < 2.13: broadcast_buffers (no init sync)
    sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    no_sync: dict[str, Any] = {sync: False}
    return DistributedDataParallel(step, device_ids=ids, find_unused_parameters=True, **no_sync)
