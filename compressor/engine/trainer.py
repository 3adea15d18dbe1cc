"""The training loop, top to bottom.

Per step: the learning rate is looked up in precomputed schedules → forward (autocast on CUDA) →
loss check → backward → recipe hook → gradient clipping → optimiser steps → recipe's end-of-step
hook (EMA, queues) → log → checkpoint. The data position is the step itself: epoch = step // B and
the batch inside it = step % B, which the loader resumes exactly (``compressor.data.loader``).

Under ``torchrun`` the same loop runs in every process (``compressor.engine.distributed``): the
recipe's step runs inside DDP, each rank loads its slice of the global batch, and only rank 0
writes the run directory, the logs and the progress bar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import cast

import torch

from compressor.data.loader import ViewDataset, run_loader
from compressor.data.transforms import Views
from compressor.engine import distributed as ddp
from compressor.engine.checkpoint import (
    checkpoint_dir,
    list_checkpoints,
)
from compressor.engine.config import TrainConfig
from compressor.engine.cpu_bf16 import guard_one_pixel_convs
from compressor.engine.guards import (
    DivergenceWatch,
    check_state_finite,
    diverged,
    first_nonfinite,
    total_norm,
)
from compressor.engine.metrics import MetricsLog
from compressor.engine.ranges import check_recipe_numbers, check_train_config
from compressor.engine.run_checkpoints import RunCheckpoints
from compressor.engine.schedule import cosine_schedule
from compressor.engine.setup import build_components
from compressor.engine.signals import StopSignals
from compressor.errors import CompressorError
from compressor.models.saved import save_encoder
from compressor.rundir import RunDir
from compressor.runlock import RunLock
from compressor.utils.io import remove_orphaned_temps
from compressor.utils.progress import make_progress

log = logging.getLogger("compressor")


def default_run_dir(cfg: TrainConfig) -> Path:
    student = cfg.student.replace("hf-hub:", "").replace("/", "--")  # hf-hub:org/name: one folder, no colon
    return Path("runs") / f"{cfg.recipe}-{student}-{time.strftime('%Y%m%d-%H%M%S')}"


class Trainer:
    """Trains ``cfg.recipe`` and writes the run directory (see DESIGN.md, "run directory")."""

    def __init__(self, cfg: TrainConfig, *, progress: bool = True) -> None:
        self.cfg = cfg
        self.progress = progress
        self.dist = ddp.context_from_env()
        if not self.dist.is_main:  # one voice: the other ranks only warn
            log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
        if self.dist.enabled and not cfg.out:
            raise CompressorError("under torchrun every process must write to the same run directory: pass --out DIR")
        self.run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
        _check_numbers(cfg)  # before any model is built: a bad number fails in milliseconds
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise CompressorError(f"--out {self.run_dir} is a file; pass a directory for the run")
        if cfg.auto_resume:  # a (re)submitted job: continue what is there, else start
            if not cfg.out:
                raise CompressorError("--auto-resume needs --out DIR, the run directory to start or continue")
            self.cfg = cfg = dataclasses.replace(cfg, resume=bool(list_checkpoints(self.run_dir)))
        if not cfg.resume and list_checkpoints(self.run_dir):
            raise CompressorError(f"{self.run_dir} already holds a run; pass --resume to continue it or "
                                  "choose another --out")
        if cfg.resume and not cfg.out:
            raise CompressorError("--resume needs --out DIR, the run directory to continue")
        self._stop_requested = False  # set by the signal handler, on this rank
        self._stopped = False  # the loop stopped early on a request (under DDP: one all ranks agreed on)
        self.signals = StopSignals(self._request_stop)  # SIGINT and SIGTERM: checkpoint, then stop

    # -- set-up -------------------------------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.cfg
        c = build_components(cfg)
        self.device, self.autocast_dtype, self.recipe = self.dist.device(c.device), c.autocast_dtype, c.recipe
        self.dist.init(self.device)
        if self.dist.enabled:
            ddp.convert_batchnorm(self.recipe, self.device)
        self.recipe.to(self.device)
        if self.device.type == "cuda":
            self.recipe.to(memory_format=torch.channels_last)
        if self.device.type == "cpu" and self.autocast_dtype is torch.bfloat16:  # a oneDNN bug (cpu_bf16.py)
            guard_one_pixel_convs(self.recipe)
        self.step_fn = ddp.wrap_step(self.recipe, self.dist, self.device)
        if cfg.compile:  # graph breaks (data-dependent caches, queues) fall back to eager, never to wrong results
            self.step_fn = torch.compile(self.step_fn)
        views = self.recipe.views()
        if cfg.teacher_cache:
            from compressor.data.teacher_cache import attach_cache

            cache = attach_cache(self.recipe, c.dataset, cfg.teacher_cache, is_main=self.dist.is_main,
                                 source=c.teacher_source, barrier=ddp.barrier)
            if cache.complete and isinstance(views, Views):  # every embedding is on disk: skip decoding its view
                views = views.without(self.recipe.teacher_cache_view)
        self.data = ViewDataset(c.dataset, views, seed=cfg.seed)
        self.batch_size = c.batch_size
        if self.batch_size % self.dist.world_size:
            raise CompressorError(f"--batch-size is the global batch and must be divisible by the "
                                  f"{self.dist.world_size} processes; got {self.batch_size}")
        self.steps_per_epoch, self.total_steps = c.steps_per_epoch, c.total_steps
        self.preset = c.preset
        self.optimizers = self.recipe.optimizers()
        rc = self.recipe.cfg
        self.lr_factor = cosine_schedule(self.total_steps, round(rc.warmup_fraction * self.total_steps),
                                         1.0, rc.min_lr_fraction)
        fp16 = self.autocast_dtype is torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.watch = DivergenceWatch(self.device)  # read at log steps and before checkpoints
        self.ckpt = RunCheckpoints(cfg, self.run_dir, self.recipe, self.optimizers, self.scaler, self.dist)
        self.knn = None
        if cfg.eval_every > 0:
            from compressor.eval.during import KnnMonitor

            self.knn = KnnMonitor(cfg.data, cfg.data_root, self.device)

    def _write_config(self) -> None:
        """``config.yaml`` records resolved values (the student's input size, the recipe's full config)."""
        d = self.cfg.to_dict()
        d["recipe_config"] = {k: list(v) if isinstance(v, tuple) else v
                              for k, v in vars(self.recipe.cfg).items()}
        d["image_size"] = self.recipe.student.spec.image_size
        if self.recipe.peer is not None:
            d["peer_image_size"] = self.recipe.peer.spec.image_size
        d["out"] = str(self.run_dir)
        d.pop("resume")
        d.pop("auto_resume")
        run = RunDir(self.run_dir)
        run.write_config(d)
        teachers = [getattr(t, "info", {"name": t.name}) for t in self.recipe.teachers]
        student = getattr(self.recipe.student, "weights_info", None) or {"weights": "random init"}
        meta = {"recipe": self.cfg.recipe, "kind": self.recipe.kind, "teachers": teachers, "student": student,
                **({"peer": getattr(self.recipe.peer, "weights_info", None) or {"weights": "random init"}}
                   if self.recipe.peer is not None else {}),
                "device": str(self.device), "precision": str(self.autocast_dtype or "fp32"),
                "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                "torch": torch.__version__}
        if self.preset is not None:  # the short-run preset's changes, paper value → value used
            meta["preset"] = self.preset.to_json()
        run.write_info(meta)

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> Path:
        """Hold the run directory's lock for the whole run: a second trainer on it fails at once.

        Under DDP rank 0 holds it for the job (it is the only writer); the other ranks of the same job
        do not take it, or they would refuse their own job's directory.
        """
        lock = RunLock(self.run_dir) if self.dist.is_main else contextlib.nullcontext()
        with lock:
            if self.dist.is_main:
                for folder in (self.run_dir, checkpoint_dir(self.run_dir)):
                    for p in remove_orphaned_temps(folder):
                        log.info("removed %s, left by an interrupted write", p)
            return self._fit()

    def _fit(self) -> Path:
        self._setup()
        self.ckpt.check_free_space()
        step = self.ckpt.restore() if self.cfg.resume else 0
        if not self.cfg.resume:  # the loop's own randomness (masks, dropout); one stream per rank
            torch.manual_seed(self.cfg.seed + 1 + 1_000_003 * self.dist.rank)
        metrics: MetricsLog | None = None
        if self.dist.is_main:
            try:
                self._write_config()
                metrics = MetricsLog(self.run_dir, resume_step=step)
            except OSError as err:
                raise self.ckpt.write_error("the run's files", err) from err
        skipped: set[str] = set()
        try:
            with self.signals:
                step = self._loop(step, metrics, skipped)
        except OSError as err:  # metrics.jsonl or TensorBoard on a full disk
            raise self.ckpt.write_error(f"the run's files at step {step}", err) from err
        finally:
            if metrics is not None:
                with contextlib.suppress(OSError):
                    metrics.close()
            if self.dist.enabled and self._stopped:
                ddp.shutdown()
        if skipped:
            log.warning("%d unreadable images were skipped (named above)", len(skipped))
        if self._stopped:
            raise CompressorError(f"interrupted ({self.signals.name}): checkpoint saved at step {step}; continue "
                                  f"with `compress distill --resume --out {self.run_dir}`",
                                  exit_code=self.signals.exit_code)
        if self.dist.is_main:
            for name, enc in self.recipe.saved_models().items():
                check_state_finite(enc.state_dict(), f"{name}'s weights", step, self.run_dir, self.ckpt.kept_step())
                try:
                    save_encoder(enc, self.run_dir, name, recipe=self.cfg.recipe, steps=step,
                                 teachers=[getattr(t, "info", {}) for t in self.recipe.teachers])
                except OSError as err:
                    raise self.ckpt.write_error(f"the {name}", err) from err
            # a finished run keeps only its last checkpoint (still resumable with a larger --max-steps) unless
            # --keep-checkpoints says otherwise: with a wide projector they can be many times the student's size
            for _, old in list_checkpoints(self.run_dir)[:-(self.cfg.keep_checkpoints or 1)]:
                old.unlink(missing_ok=True)
        ddp.barrier()  # no rank reports success before the student is written
        ddp.shutdown()
        return self.run_dir

    def _loop(self, step: int, metrics: MetricsLog | None, skipped: set[str]) -> int:
        cfg, recipe = self.cfg, self.recipe
        recipe.train()
        window_t, window_n = time.perf_counter(), 0
        logs: dict[str, float | torch.Tensor] = {}
        bar = make_progress("loss", "ips") if self.progress and self.dist.is_main else contextlib.nullcontext()
        trained_since_save, empty_run = False, 0
        loader = run_loader(self.data, self.batch_size, step, self.total_steps, cfg.workers, cfg.seed,
                            rank=self.dist.rank, world_size=self.dist.world_size)
        with bar as progress:
            task = progress.add_task(f"{cfg.recipe}", total=self.total_steps, completed=step, loss="", ips="") \
                if progress else None
            for batch in loader:
                for f in batch.pop("_skipped"):
                    skipped.add(f)
                if batch:
                    trained_since_save, empty_run = True, 0
                    logs = self._train_step(step, batch)  # device tensors: no host sync in the step
                    window_n += batch["index"].shape[0] * self.dist.world_size
                else:
                    empty_run += 1
                    if empty_run >= self.steps_per_epoch:  # a whole epoch's worth with no readable image
                        raise CompressorError(f"every image failed to load (for example {sorted(skipped)[0]}); "
                                              "check the files or point --data at another folder")
                step += 1
                logging_step = step % cfg.log_every == 0 or step == self.total_steps
                agreed = False
                if logging_step:  # the host syncs once per log_every steps: divergence, stop requests, logs
                    self._check_diverged()
                    # Under DDP the ranks agree on a stop request here (a signal may reach them at different
                    # steps, and a rank that stopped alone would hang the others). Only the agreed value
                    # decides: a signal that lands during or after this collective waits for the next one.
                    agreed = self.dist.enabled and ddp.any_rank(self._stop_requested, self.device)
                    ips = window_n / max(1e-9, time.perf_counter() - window_t)
                    window_t, window_n = time.perf_counter(), 0
                    values = ddp.mean_over_ranks(_floats(logs), self.device)
                    if metrics is not None:
                        metrics.log(step, {**values, "lr": self.optimizers[0].param_groups[0]["lr"], "ips": ips})
                    if progress is not None and task is not None:
                        progress.update(task, loss=f"loss {values.get('loss', float('nan')):.4f}",
                                        ips=f"{ips:.0f} img/s")
                stop = agreed if self.dist.enabled else self._stop_requested
                if self.knn is not None and metrics is not None and (
                        step % cfg.eval_every == 0 or step == self.total_steps):
                    metrics.log(step, self.knn(recipe.student))  # eval mode inside, train mode after
                if progress is not None and task is not None:
                    progress.advance(task)
                due = step % cfg.checkpoint_every == 0 or step == self.total_steps or stop
                if due and trained_since_save:  # a checkpoint only ever follows real optimiser steps
                    self._check_diverged()
                    self.ckpt.save(step)
                    trained_since_save = False
                if step >= self.total_steps:  # the last step: the run is finished, whatever came in
                    break
                if stop:
                    self._stopped = True
                    break
        return step

    def _check_diverged(self) -> None:
        """Stop with the first divergence the device recorded (on every rank when any rank saw one)."""
        found = self.watch.verdict()
        if self.dist.enabled:
            if not ddp.any_rank(found is not None, self.device):
                return
            verdicts = [cast(tuple[str, int, float], v) for v in ddp.gather_objects(found) if v is not None]
            found = min(verdicts, key=lambda v: v[1])
        if found is None:
            return
        what, at, value = found
        example = first_nonfinite(self.recipe.named_parameters()) if what == "weights" else None
        raise diverged(what, at, self.run_dir, self.ckpt.kept_step(), example,
                       became=str(value) if what == "loss" else "non-finite")

    def _train_step(self, step: int, batch: dict) -> dict[str, float | torch.Tensor]:
        recipe, watch = self.recipe, self.watch
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * self.lr_factor[step]
        batch = {k: self._to_device(v) for k, v in batch.items()}
        autocast = torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype \
            else contextlib.nullcontext()
        try:
            with autocast:
                loss, step_logs = self.step_fn(batch)
            watch.note("loss", torch.isfinite(loss.detach()).all(), step + 1, loss)
            self.scaler.scale(loss).backward()
        except torch.cuda.OutOfMemoryError:
            raise CompressorError(f"CUDA out of memory at batch size {self.batch_size}; try "
                                  f"--batch-size {max(1, self.batch_size // 2)}") from None
        recipe.on_after_backward(step, self.total_steps)
        for opt in self.optimizers:
            self.scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"]]
            if recipe.cfg.clip_grad > 0:
                clip_gradients(params, recipe.cfg.clip_grad, per_parameter=recipe.cfg.clip_per_parameter)
            norm = total_norm(p.grad for p in params if p.grad is not None)
            # fp16's GradScaler skips steps with inf gradients by design; everywhere else they are fatal
            if norm is not None and not self.scaler.is_enabled():
                watch.note("gradients", torch.isfinite(norm), step + 1)
            try:
                self.scaler.step(opt)
            except RuntimeError as err:  # e.g. lr / bias correction beyond float32 inside the optimiser
                if "overflow" not in str(err):
                    raise
                raise diverged("update", step + 1, self.run_dir, self.ckpt.kept_step(),
                               became="too large for float32") from None
            opt.zero_grad(set_to_none=True)
        self.scaler.update()
        recipe.on_step_end(step, self.total_steps)
        params = [p for opt in self.optimizers for g in opt.param_groups for p in g["params"]]
        norm = total_norm(params)
        if norm is not None:  # e.g. lr=1e30: finite loss, broken weights
            watch.note("weights", torch.isfinite(norm), step + 1)
        return {"loss": loss.detach(), **step_logs}

    def _to_device(self, v: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and v.ndim == 4:  # images: channels_last like the models
            return v.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        return v.to(self.device, non_blocking=True)

    def _request_stop(self) -> None:
        self._stop_requested = True


def _check_numbers(cfg: TrainConfig) -> None:
    """Every numeric setting and recipe option inside its range (engine/ranges.py), before any model exists."""
    from compressor.engine.recipe import get_recipe, make_config

    check_train_config(cfg)
    check_recipe_numbers(cfg.recipe, make_config(get_recipe(cfg.recipe), cfg.recipe_config))


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float, *, per_parameter: bool = False) -> None:
    """Clip the global gradient norm of ``params`` to ``max_norm``, or each parameter's own (DINO's rule)."""
    if not per_parameter:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    for p in params:
        if p.grad is not None:
            torch.nn.utils.clip_grad_norm_([p], max_norm)


def _floats(logs: dict[str, float | torch.Tensor]) -> dict[str, float]:
    """The logged values as numbers: one host transfer for all the device tensors."""
    tensors = {k: v for k, v in logs.items() if isinstance(v, torch.Tensor)}
    out = {k: float(v) for k, v in logs.items() if not isinstance(v, torch.Tensor)}
    if tensors:
        values = torch.stack([v.detach().float().reshape(()) for v in tensors.values()]).tolist()
        out.update(zip(tensors, values, strict=True))
    return out


def train(cfg: TrainConfig, *, progress: bool = True) -> Path:
    """Run (or resume) a distillation; returns the run directory. The library entry point."""
    return Trainer(cfg, progress=progress).fit()
