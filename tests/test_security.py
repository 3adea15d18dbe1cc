"""Nothing in the source unpickles arbitrary objects or evaluates code found in files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("compressor", "recipes", "export", "benchmarks") for p in (ROOT / d).rglob("*.py"))


def _calls(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_unsafe_loading(path: Path) -> None:
    for node, name in _calls(path):
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        if name.endswith("torch.load"):
            kw = {k.arg: k.value for k in node.keywords}
            assert "weights_only" in kw, f"{where}: torch.load without weights_only=True"
            assert isinstance(kw["weights_only"], ast.Constant) and kw["weights_only"].value is True, \
                f"{where}: torch.load must pass weights_only=True literally"
        assert name not in ("pickle.load", "pickle.loads", "eval", "exec", "marshal.loads"), f"{where}: {name}"
        if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            raise AssertionError(f"{where}: use yaml.safe_load")
        if name.endswith("load_state_dict_from_url"):
            kw = {k.arg: k.value for k in node.keywords}
            assert "weights_only" in kw, f"{where}: load_state_dict_from_url defaults to weights_only=False"


def test_the_scan_sees_the_loaders() -> None:
    names = {n for p in SOURCES for _, n in _calls(p)}
    assert "torch.load" in names and "yaml.safe_load" in names  # the test looks at real call sites
