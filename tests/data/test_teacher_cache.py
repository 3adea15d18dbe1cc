"""The on-disk teacher cache: same loss as the live teacher, refusals that name what differs, resume.

Real timm teachers, real memory-mapped files. Tolerance for cached vs live: 1e-5 (relative and
absolute) in fp32 — a cached row was computed inside another batch than the one it is read into,
which can change the last bits of a convolution's result, nothing more.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from compressor.data.datasets import SyntheticDataset
from compressor.data.loader import ViewDataset, collate_views
from compressor.data.subset import training_subset
from compressor.data.teacher_cache import TeacherCache, attach_cache, cache_key, fill_cache
from compressor.engine.recipe import DataInfo, make_config
from compressor.errors import CompressorError
from compressor.models.students import build_student
from compressor.recipes.mvmr import MVMR
from tests.conftest import frozen_teacher


def _data(n: int = 12) -> SyntheticDataset:
    return SyntheticDataset(size=n, image_size=32, seed=4)


def _calls(model: torch.nn.Module) -> list[int]:
    seen: list[int] = []
    model.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    return seen


def test_cached_and_live_teacher_give_the_same_loss(tmp_path) -> None:
    ds = _data()
    teacher = frozen_teacher("resnet10t", 40)
    torch.manual_seed(0)
    recipe = MVMR(make_config(MVMR, {"projector_dims": [16, 16]}), build_student("resnet10t", 32),
                  teachers=[teacher], data=DataInfo(0, 6, num_images=len(ds)))
    recipe.eval()  # BatchNorm on running statistics: the two losses differ only through T(x_o)
    views = ViewDataset(ds, recipe.views(), seed=0)
    batch = collate_views([views[i] for i in (7, 2, 9, 0, 11, 4)])
    batch.pop("_skipped")
    with torch.no_grad():
        live = recipe.step(batch).loss
    cache = attach_cache(recipe, ds, tmp_path / "tc")
    assert fill_cache(cache, teacher, ds, batch_size=5) == len(ds)  # other batch compositions than the step's
    calls = _calls(teacher)
    with torch.no_grad():
        cached = recipe.step(batch).loss
    assert calls == []  # every row came from the file
    torch.testing.assert_close(cached, live, rtol=1e-5, atol=1e-5)
    # and the rows are the teacher's embeddings of the deterministic view, image by image
    with torch.no_grad():
        direct = teacher(batch["t_o"])
    torch.testing.assert_close(torch.from_numpy(cache.emb[batch["index"].numpy()]), direct, rtol=1e-5, atol=1e-5)


def test_a_cache_of_another_teacher_weights_size_or_data_set_is_refused(tmp_path) -> None:
    ds = _data()
    teacher = frozen_teacher("resnet10t", 40)
    TeacherCache(tmp_path / "tc", cache_key(ds, teacher))
    other_weights = frozen_teacher("resnet10t", 40)
    with torch.no_grad():
        next(other_weights.parameters()).add_(1e-3)
    cases = {
        "teacher weights": cache_key(ds, other_weights),
        "teacher input size": cache_key(ds, frozen_teacher("resnet10t", 48)),
        "teacher: cache resnet10t, now resnet18": cache_key(ds, frozen_teacher("resnet18", 40)),
        "data set": cache_key(training_subset(_data(16), 12, seed=1), teacher),
    }
    for what, key in cases.items():
        with pytest.raises(CompressorError, match=what):
            TeacherCache(tmp_path / "tc", key)
    assert TeacherCache(tmp_path / "tc", cache_key(ds, frozen_teacher("resnet10t", 40))).num_filled == 0


def test_an_interrupted_build_resumes_where_it_stopped(tmp_path) -> None:
    ds = _data(14)
    teacher = frozen_teacher("resnet10t", 40)
    key = cache_key(ds, teacher)
    calls = _calls(teacher)

    def stop_on_third_batch(m, inp, out):
        if len(calls) == 3:
            raise KeyboardInterrupt

    handle = teacher.register_forward_hook(stop_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        fill_cache(TeacherCache(tmp_path / "tc", key), teacher, ds, batch_size=4)
    handle.remove()
    reopened = TeacherCache(tmp_path / "tc", key)  # a new process would see exactly the files
    assert reopened.num_filled == 8 and not reopened.complete
    calls.clear()
    assert fill_cache(reopened, teacher, ds, batch_size=4) == 6
    assert calls == [4, 2] and reopened.complete
    fresh = TeacherCache(tmp_path / "fresh", key)
    fill_cache(fresh, teacher, ds, batch_size=14)
    torch.testing.assert_close(torch.from_numpy(reopened.emb[:]), torch.from_numpy(fresh.emb[:]),
                               rtol=1e-5, atol=1e-5)


def test_training_with_the_cache_gives_the_weights_of_the_live_teacher(cli, tmp_path) -> None:
    args = ["distill", "--student", "resnet10t", "--recipe", "mvmr", "--teacher", "timm:resnet10t",
            "--teacher-weights", "random", "--teacher-image-size", "24", "--set", "projector_dims=[16,16]",
            "--set", "optimizer=sgd", "--set", "lr=0.01", "--data", "synthetic", "--max-images", "32",
            "--batch-size", "8", "--image-size", "24", "--max-steps", "8", "--seed", "3", "--quiet"]
    assert cli(*args, "--out", tmp_path / "live")[0] == 0
    # 2 epochs: the first fills the cache, the second reads every row from it
    assert cli(*args, "--out", tmp_path / "cached", "--teacher-cache", tmp_path / "tc")[0] == 0
    assert np.load(tmp_path / "tc" / "filled.npy").all()
    a, b = (load_file(str(tmp_path / r / "student.safetensors")) for r in ("live", "cached"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5


def test_a_complete_cache_stands_in_for_the_teacher(tmp_path, monkeypatch) -> None:
    """Once every embedding is on disk (and the weights file is unchanged) the teacher is not built and its view
    is not decoded; the run trains exactly as the one that filled the cache."""
    import os

    import timm

    from compressor.engine import setup
    from compressor.engine.config import TrainConfig
    from compressor.engine.trainer import Trainer

    weights = tmp_path / "teacher.pth"
    torch.manual_seed(5)
    torch.save(timm.create_model("resnet10t", num_classes=0).state_dict(), weights)
    base = dict(student="resnet10t", recipe="mvmr", teacher="timm:resnet10t", teacher_weights=str(weights),
                teacher_image_size=24, data="synthetic", max_images=32, batch_size=8, image_size=24, max_steps=8,
                seed=3, teacher_cache=str(tmp_path / "tc"),
                recipe_config={"projector_dims": [16, 16], "optimizer": "sgd", "lr": 0.01})
    Trainer(TrainConfig(**base, out=str(tmp_path / "filled")), progress=False).fit()  # 2 epochs: fills it
    assert np.load(tmp_path / "tc" / "filled.npy").all()

    real_build = setup.build_teachers
    monkeypatch.setattr(setup, "build_teachers", lambda cfg: pytest.fail("the teacher was built"))
    second = Trainer(TrainConfig(**base, out=str(tmp_path / "standin")), progress=False)
    second.fit()
    assert "t_o" not in second.data.views.transforms and {"x_o", "x_a"} <= set(second.data.views.transforms)
    a, b = (load_file(str(tmp_path / r / "student.safetensors")) for r in ("filled", "standin"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5

    built: list[str] = []
    monkeypatch.setattr(setup, "build_teachers", lambda cfg: built.append(cfg.teacher) or real_build(cfg))
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the weights file changed: build it again
    setup.build_components(TrainConfig(**base, out=str(tmp_path / "again")))
    assert built == ["timm:resnet10t"]


@pytest.mark.parametrize("recipe_name", ["feature-kd", "moma"])
def test_a_clean_teacher_view_makes_feature_kd_and_moma_cacheable(tmp_path, recipe_name: str) -> None:
    from compressor.recipes import get_recipe

    ds = _data()
    teacher = frozen_teacher("resnet10t", 40)
    cls = get_recipe(recipe_name)
    info = DataInfo(0, 6, num_images=len(ds))
    with pytest.raises(CompressorError, match="teacher_view=clean"):
        attach_cache(cls(make_config(cls, {}), build_student("resnet10t", 32), teachers=[teacher], data=info),
                     ds, tmp_path / "no")
    torch.manual_seed(0)
    recipe = cls(make_config(cls, {"teacher_view": "clean"}), build_student("resnet10t", 32), teachers=[teacher],
                 data=info)
    recipe.eval()
    view = recipe.teacher_cache_view
    first = ViewDataset(ds, recipe.views(), seed=0)[3]
    assert torch.equal(first[view], ViewDataset(ds, recipe.views(), seed=0)[len(ds) + 3][view])  # not per epoch
    batch = collate_views([ViewDataset(ds, recipe.views(), seed=0)[i] for i in (7, 2, 9, 0)])
    batch.pop("_skipped")
    torch.manual_seed(1)
    with torch.no_grad():
        live = recipe.step(batch).loss
    cache = attach_cache(recipe, ds, tmp_path / "tc")
    fill_cache(cache, teacher, ds, batch_size=5)
    calls = _calls(teacher)
    torch.manual_seed(1)  # moma draws its masks from the global RNG
    with torch.no_grad():
        cached = recipe.step({k: v for k, v in batch.items() if k != view}).loss  # the view need not be decoded
    assert calls == []
    torch.testing.assert_close(cached, live, rtol=1e-5, atol=1e-5)
