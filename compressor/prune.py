"""``compress prune``: structured channel pruning of a run's student, then a short distillation to recover.

The job, on a finished run ``RUN``:

1. load the student twice: one copy is pruned, the other stays whole and frozen, the *reference*;
2. remove ``ratio`` of the channels of every prunable group (:mod:`compressor.models.pruning`: torch-pruning,
   group L2 magnitude), keeping the embedding's width, and check that the pruned network rebuilds from its
   weights alone (what eval, export and bench will do);
3. pull the pruned network back toward the reference on the run's own training images
   (:func:`compressor.finetune.distill_to_reference`: cosine distillation, resumable from
   ``OUT/checkpoints/prune.pt`` when the same job is started again);
4. write ``OUT/student.safetensors`` + ``student.json`` with a ``pruned`` record (ratio, library and version,
   source run, parameters and MACs before/after, the layers left whole, the recovery's losses) and copy the
   source's ``config.yaml``, so ``compress eval|export|bench OUT`` work as on any run.

The module stays light at import (the CLI reads its defaults); torch and the rest load when a job runs.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from compressor.errors import CompressorError

log = logging.getLogger("compressor")

DEFAULT_STEPS = 300
DEFAULT_BATCH_SIZE = 32
DEFAULT_LR = 3e-4  # above QAD's 1e-5: removing channels moves the embedding further than fake quantization
DEFAULT_POOL_SIZE = 512  # training images the recovery draws its batches from (N×3×S×S float32 in memory)
CHECKPOINT = "prune.pt"  # inside OUT/checkpoints/


def default_out(run_dir: str | Path, ratio: float) -> Path:
    """``<run>-pruned<ratio·100>`` beside the run: ``runs/r18`` at 0.3 → ``runs/r18-pruned30``."""
    run = Path(run_dir).resolve()
    return run.parent / f"{run.name}-pruned{ratio * 100:.0f}"


def check_ratio(ratio: float) -> None:
    if not (isinstance(ratio, int | float) and 0.0 < ratio < 1.0):
        raise CompressorError(f"--ratio is the fraction of channels to remove, strictly between 0 and 1 "
                              f"(0.3 removes 30%), got {ratio}")


def prune_run(run_dir: str | Path, out_dir: str | Path | None = None, *, ratio: float, steps: int = DEFAULT_STEPS,
              batch_size: int = DEFAULT_BATCH_SIZE, lr: float = DEFAULT_LR, pool_size: int = DEFAULT_POOL_SIZE,
              seed: int = 0, checkpoint_every: int = 50) -> Path:
    """Prune ``ratio`` of the channels of ``run_dir``'s student, recover for ``steps`` steps and save it to
    ``out_dir`` (default :func:`default_out`); returns the new run directory.

    Started again with the same arguments, a killed job continues from its checkpoint, and a finished one is
    left as it is. Raises :class:`CompressorError` (one line naming the fix) for values that cannot work, a
    folder that is not a finished run, an ``out_dir`` holding another finished run, an architecture
    torch-pruning cannot prune, or torch-pruning not installed.
    """
    from compressor.export.images import load_images
    from compressor.finetune import FinetuneConfig, distill_to_reference
    from compressor.models.pruning import check_rebuild, library_version, prune_encoder
    from compressor.models.saved import load_encoder, read_encoder_meta, save_encoder
    from compressor.rundir import RunDir
    from compressor.runlock import FolderLock, refuse_if_training
    from compressor.utils.extras import require
    from compressor.utils.io import atomic_write, file_record

    check_ratio(ratio)
    config = FinetuneConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, checkpoint_every=checkpoint_every)
    config.check()
    if pool_size < 1:
        raise CompressorError(f"the recovery needs at least one training image, got pool_size={pool_size}")
    src = RunDir(run_dir)
    meta = read_encoder_meta(src.path)  # one line for a missing folder or an unfinished run
    if isinstance(meta.get("pruned"), dict):
        log.info("%s is already pruned (%s of its channels); pruning it further", src, meta["pruned"].get("ratio"))
    refuse_if_training(src.path, "prune")
    require("torch_pruning", "structured pruning (compress prune)")
    out = RunDir(out_dir if out_dir is not None else default_out(src.path, ratio))
    if out.path.resolve() == src.path.resolve():
        raise CompressorError(f"--out {out} is the source run; pass another folder (the default is "
                              f"{default_out(src.path, ratio)})")
    data, data_root = src.data()
    if data is None:
        raise CompressorError(f"{src.config_path} is missing, so the run's training images are unknown; restore "
                              "it from the run")
    # what makes two jobs the same: the checkpoint resumes and a finished OUT is kept only under this key
    job = {"source": str(src.path.resolve()), "source_sha256": file_record(src.weights_path())["sha256"],
           "ratio": ratio, "library_version": library_version(), "data": data, "pool_size": pool_size,
           **asdict(config)}
    with FolderLock(out.path, "prune"):
        if out.is_finished():
            done = out.read_meta().get("pruned")
            if isinstance(done, dict) and done.get("job") == job:
                log.info("%s already holds this pruned student; nothing to do", out)
                return out.path
            raise CompressorError(f"{out} already holds a finished run; pass another --out or remove that folder")
        student, reference = load_encoder(src.path), load_encoder(src.path)
        record = prune_encoder(student, ratio)
        check_rebuild(student)
        pool = load_images(data, student.spec, pool_size, split="train", root=data_root, seed=seed).images
        checkpoint = out.checkpoints_dir / CHECKPOINT
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        recovery = distill_to_reference(student, reference, pool, config, key=job, checkpoint=checkpoint,
                                        description=f"recovering ({100 * ratio:.0f}% pruned)")
        log.info("recovery: 1 - cos to the unpruned student %s -> %s over %d steps", recovery["loss_first"],
                 recovery["loss_last"], steps)
        text = src.config_path.read_bytes()  # eval, export and bench find the run's data through it
        atomic_write(out.config_path, lambda p: p.write_bytes(text))
        written = {"format", "arch", "image_size", "mean", "std", "embed_dim", "stem", "pruned"}
        lineage = {k: v for k, v in meta.items() if k not in written}  # recipe, teachers: what it descends from
        # student.json last: its presence is what marks OUT finished
        save_encoder(student, out.path, **lineage,
                     pruned={**record, "source": job["source"], "recovery": recovery, "job": job})
        checkpoint.unlink(missing_ok=True)  # finished: the student holds the result, the checkpoint nothing more
    log.info("pruned student written to %s (%s -> %s parameters)", out, f"{record['params_before']:,}",
             f"{record['params_after']:,}")
    return out.path

