"""Per-model image transforms (torchvision.transforms.v2): each model sees its own size and normalisation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from compressor.models.encoder import InputSpec
from compressor.models.stems import SMALL_INPUT_BELOW

Transform = Callable[[object], torch.Tensor]


def _to_tensor(spec: InputSpec) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(spec.mean), list(spec.std))]


def eval_transform(spec: InputSpec) -> Transform:
    """The non-augmented view: resize the short side to ``image_size``, centre crop, normalise."""
    return v2.Compose([v2.Resize(spec.image_size, antialias=True), v2.CenterCrop(spec.image_size),
                       *_to_tensor(spec)])


@dataclass(frozen=True)
class AugmentConfig:
    """SimCLR/MoCo-v2 style augmentation; the MV-MR paper uses jitter 0.8 and blur always on."""

    scale: tuple[float, float] = (0.2, 1.0)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_kernel_frac: float = 0.1  # kernel ≈ 10% of the side
    flip_p: float = 0.5
    solarize_p: float = 0.0  # BYOL/DINO's second global crop


MOCO_V2_AUG = AugmentConfig()
MVMR_AUG = AugmentConfig(jitter=(0.8, 0.8, 0.8, 0.2), blur_p=1.0)


def _augment_ops(cfg: AugmentConfig, size: int) -> list:
    """The augmentation ops at ``size`` px. Below ``SMALL_INPUT_BELOW`` (96) px there is no blur: the
    authors' small-image settings drop it (SimCLR's CIFAR setting, DoGo's ``cifar`` path), since a
    3-pixel kernel on a 32 px image removes much of what is left to recognise."""
    kernel = max(3, int(cfg.blur_kernel_frac * size) // 2 * 2 + 1)  # odd
    ops: list = [v2.RandomResizedCrop(size, scale=cfg.scale, antialias=True), v2.RandomHorizontalFlip(cfg.flip_p)]
    if cfg.jitter_p > 0:
        ops.append(v2.RandomApply([v2.ColorJitter(*cfg.jitter)], p=cfg.jitter_p))
    if cfg.grayscale_p > 0:
        ops.append(v2.RandomGrayscale(cfg.grayscale_p))
    # Colour ops run on the PIL image (hue jitter on tensors is ~70x slower), the blur on the tensor
    # (Pillow's path through v2.GaussianBlur is ~80x slower).
    ops.append(v2.ToImage())
    if cfg.blur_p > 0 and size >= SMALL_INPUT_BELOW:
        ops.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=cfg.blur_p))
    if cfg.solarize_p > 0:
        ops.append(v2.RandomSolarize(128, p=cfg.solarize_p))  # on the uint8 image, as PIL's solarize
    return ops


def augment_transform(spec: InputSpec, cfg: AugmentConfig = MOCO_V2_AUG, size: int | None = None) -> Transform:
    """A random augmented view at ``size`` (default the model's own size) with the model's normalisation."""
    return v2.Compose([*_augment_ops(cfg, size or spec.image_size), *_to_tensor(spec)])


class SameView:
    """One random augmentation shown to several models, each at its own size and normalisation.

    The crop, flip, jitter and blur are drawn once at the largest model size; each model then gets
    that same image resized to its ``image_size`` and normalised with its mean/std (SEED, feature-kd).
    """

    def __init__(self, cfg: AugmentConfig = MOCO_V2_AUG, **specs: InputSpec) -> None:
        size = max(s.image_size for s in specs.values())
        self.augment = v2.Compose(_augment_ops(cfg, size))
        self.finish = {name: v2.Compose([v2.Resize(s.image_size, antialias=True), *_to_tensor(s)[1:]])
                       for name, s in specs.items()}

    def __call__(self, img: object) -> dict[str, torch.Tensor]:
        shared = self.augment(img)
        return {name: f(shared) for name, f in self.finish.items()}


class Views:
    """Named transforms applied to the same image: ``Views(x_o=eval_t, x_a=aug_t)(img) -> dict``."""

    def __init__(self, **transforms: Transform) -> None:
        self.transforms = transforms

    def without(self, name: str | None) -> Views:
        """These views but ``name`` (e.g. a teacher view whose embeddings all come from a cache)."""
        return Views(**{k: t for k, t in self.transforms.items() if k != name})

    def __call__(self, img: object) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, t in self.transforms.items():
            res = t(img)
            out.update(res if isinstance(res, dict) else {name: res})  # a SameView fills several names
        return out
