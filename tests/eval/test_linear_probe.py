"""The linear probe is the papers' protocol: scikit-learn's L-BFGS logistic regression, C swept on a held-out split
of the training features. Checked against scikit-learn run independently here, on Fashion-MNIST pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compressor.eval.linear import ADAM, C_GRID, LOGREG, MAX_ITER, VAL_FRACTION, describe_probe, linear_probe
from tests.conftest import requires_fmnist


def _pixels(n_train: int, n_test: int) -> tuple[torch.Tensor, ...]:
    """A seeded sample of Fashion-MNIST's training and test images as 784 raw pixel features."""
    from compressor.data.datasets import build_dataset

    out = []
    for split, n in (("train", n_train), ("val", n_test)):
        ds = build_dataset("fashion-mnist", split, None)
        idx = np.random.default_rng(0).choice(len(ds.labels), n, replace=False)
        out += [torch.from_numpy(ds.images[idx].reshape(n, -1).astype(np.float32) / 255),
                torch.from_numpy(ds.labels[idx])]
    return tuple(out)


@requires_fmnist
def test_probe_matches_scikit_learn_sweep_and_refit() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedShuffleSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    x, y, xt, yt = _pixels(1000, 400)
    res = linear_probe(x, y, xt, yt)
    assert res.record["kind"] == LOGREG and res.record["grid"] == list(C_GRID)

    # The sweep, as scikit-learn's own grid search does it: scaler + model refit per split, one stratified split.
    xn, yn, xtn, ytn = x.numpy(), y.numpy(), xt.numpy(), yt.numpy()
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER)),
                          {"logisticregression__C": list(C_GRID)},
                          cv=StratifiedShuffleSplit(n_splits=1, test_size=VAL_FRACTION, random_state=0), refit=False)
    with threadpool_limits(limits=1, user_api="blas"):  # the probe's BLAS setting: the same arithmetic, bit for bit
        search.fit(xn, yn)
        scaler = StandardScaler().fit(xn)
        clf = LogisticRegression(C=search.best_params_["logisticregression__C"], max_iter=MAX_ITER)
        clf.fit(scaler.transform(xn), yn)
    best = search.best_params_["logisticregression__C"]
    assert res.record["C"] == best
    assert res.record["val_top1"] == list(search.cv_results_["split0_test_score"])

    # The final fit: all training features standardised by their own statistics, the chosen C, scored once on test.
    assert res.top1 == float(np.mean(clf.predict(scaler.transform(xtn)) == ytn))
    assert 0.6 < res.top1 < 1.0  # pixels of Fashion-MNIST: ~80% for a linear model
    # the sweep mattered: the grid's ends are worse than the chosen C on the held-out split
    assert max(res.record["val_top1"]) > min(res.record["val_top1"][0], res.record["val_top1"][-1])


def test_tiny_bank_is_fit_with_the_default_c_and_says_so() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 8, generator=g), torch.arange(10) % 5  # two images per class: no held-out split
    res = linear_probe(x, y, x, y)
    assert res.record["C"] == 1.0 and res.record["grid"] == [] and "default" in res.record["note"]
    assert "no sweep" in describe_probe(res.record)


def test_adam_probe_is_a_named_option_and_recorded() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 32, generator=g) * 3
    y = torch.arange(400) % 4
    x = centres[y] + torch.randn(400, 32, generator=g)
    res = linear_probe(x[:300], y[:300], x[300:], y[300:], kind=ADAM)
    assert res.top1 > 0.95 and res.record["kind"] == ADAM and "Adam" in describe_probe(res.record)
    from compressor.errors import CompressorError

    with pytest.raises(CompressorError, match="lbfgs-logreg"):
        linear_probe(x, y, x, y, kind="lbfgs")


def test_eval_json_records_the_probe(tmp_path: Path, cli) -> None:
    from compressor.models.saved import save_encoder
    from compressor.models.students import build_student
    from compressor.rundir import RunDir

    torch.manual_seed(0)
    run = tmp_path / "run"
    save_encoder(build_student("resnet10t", 24), run)
    RunDir(run).write_config({"data": "synthetic"})
    code, out, err = cli("eval", run, "--max-train", "200", "--max-val", "50")
    assert code == 0, err
    res = json.loads(RunDir(run).eval_path.read_text())
    assert res["probe"]["kind"] == LOGREG and res["probe"]["C"] in C_GRID and res["probe"]["grid"] == list(C_GRID)
    assert 0 <= res["linear_top1"] <= 1 and f"C={res['probe']['C']:g}" in out.replace(" ", "")
    code, _, err = cli("report", run)  # the report's quality table says which probe, and the C it chose
    assert code == 0, err
    quality = (run / "report.md").read_text().split("## Quality")[1].split("##")[0]
    assert "linear top-1" in quality and f"(C={res['probe']['C']:g})" in quality and "L-BFGS" in quality
    code, _, err = cli("eval", run, "--max-train", "200", "--max-val", "50", "--probe", "adam")
    assert code == 0, err
    assert json.loads(RunDir(run).eval_path.read_text())["probe"]["kind"] == ADAM
