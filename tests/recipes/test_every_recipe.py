"""Every registered recipe: metadata, and one real CPU optimisation step (the registry is the list)."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
from torchvision.transforms import v2

from compressor.data.datasets import SyntheticDataset
from compressor.data.loader import ViewDataset, collate_views
from compressor.engine.recipe import KINDS, DataInfo, Recipe, make_config
from compressor.models.students import build_student
from compressor.recipes import list_recipes

# Small settings so a step is quick on CPU; models a recipe needs that differ from the default pair.
SMALL = {"projector_dims": [64, 32], "hidden_dim": 64}
MODELS: dict[str, tuple[str, str]] = {"mokd": ("resnet18", "vit_tiny_patch16_224")}


def _build(recipe_cls: type[Recipe], teacher) -> Recipe:
    fields = {f.name for f in dataclasses.fields(recipe_cls.Config)}
    overrides = {k: v for k, v in {**SMALL, **getattr(recipe_cls, "test_overrides", {})}.items() if k in fields}
    cfg = make_config(recipe_cls, overrides)
    s_arch, p_arch = MODELS.get(recipe_cls.name, ("resnet18", "resnet10t"))
    torch.manual_seed(0)
    student = build_student(s_arch, 32)
    peer = build_student(p_arch, 32) if recipe_cls.needs_peer else None
    teachers = [teacher] * (2 if recipe_cls.multi_teacher else 1) if recipe_cls.needs_teacher else None
    return recipe_cls(cfg, student, teachers=teachers, peer=peer, data=DataInfo(num_classes=10, batch_size=8))


@pytest.mark.parametrize("recipe_cls", list_recipes(), ids=lambda r: r.name)
def test_metadata(recipe_cls: type[Recipe]) -> None:
    assert recipe_cls.kind in KINDS
    assert recipe_cls.description and "\n" not in recipe_cls.description
    assert recipe_cls.__module__.startswith("compressor.recipes.")
    module_doc = sys.modules[recipe_cls.__module__].__doc__ or ""
    # The recipe's own module docstring (not the package's), with the equation it implements.
    assert module_doc and module_doc != sys.modules["compressor.recipes"].__doc__
    assert "=" in module_doc and recipe_cls.name.replace("-", "").lower()[:4] in module_doc.replace("-", "").lower()


@pytest.mark.parametrize("recipe_cls", list_recipes(), ids=lambda r: r.name)
def test_one_cpu_step(recipe_cls: type[Recipe], teacher) -> None:
    recipe = _build(recipe_cls, teacher)
    ds = ViewDataset(SyntheticDataset(size=8, image_size=48), recipe.views(), seed=0)
    batch = collate_views([ds[i] for i in range(8)])
    batch.pop("_skipped")
    recipe.train()
    opts = recipe.optimizers()
    before = {n: p.detach().clone() for n, p in recipe.student.named_parameters()}
    out = recipe.step(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    recipe.on_after_backward(0, 10)
    for opt in opts:
        opt.step()
        opt.zero_grad()
    recipe.on_step_end(0, 10)
    changed = sum(not torch.equal(before[n], p) for n, p in recipe.student.named_parameters())
    assert changed > 0, "the student did not move"
    for t in recipe.teachers:
        assert all(not p.requires_grad for p in t.parameters())
    state = recipe.trainable_state_dict()
    assert not any(k.startswith("teachers.") for k in state)


def _crops(view: object) -> list[v2.RandomResizedCrop]:
    """Every random resized crop inside a recipe's view callable (Views, SameView, Compose, RandomApply)."""
    if isinstance(view, v2.RandomResizedCrop):
        return [view]
    inner = getattr(view, "transforms", None) or getattr(view, "augment", None) or []  # Views: a dict
    children = list(inner.values()) if isinstance(inner, dict) else list(inner) if isinstance(inner, list) else [inner]
    return [c for child in children for c in _crops(child)]


@pytest.mark.parametrize("recipe_cls", [r for r in list_recipes()
                                        if "crop_scale_min" in {f.name for f in dataclasses.fields(r.Config)}],
                         ids=lambda r: r.name)
def test_views_crop_with_the_configured_scale(recipe_cls: type[Recipe], teacher, monkeypatch) -> None:
    monkeypatch.setitem(SMALL, "crop_scale_min", 0.65)
    recipe = _build(recipe_cls, teacher)
    crops = _crops(recipe.views())
    assert crops and all(c.scale == (0.65, 1.0) for c in crops), [c.scale for c in crops]


@pytest.mark.parametrize("recipe_cls", [r for r in list_recipes() if r.needs_peer], ids=lambda r: r.name)
def test_a_pair_recipe_without_its_peer_names_the_flag(recipe_cls: type[Recipe]) -> None:
    """Built from Python without a peer, a pair recipe is one line naming --peer (mokd and css had a bare assert)."""
    from compressor.errors import CompressorError

    with pytest.raises(CompressorError, match="--peer"):
        recipe_cls(make_config(recipe_cls, {}), build_student("resnet18", 32), peer=None,
                   data=DataInfo(num_classes=10, batch_size=8))
