"""The library API finds the recipes by itself (entry points), without the CLI's load_plugins()."""

from __future__ import annotations

import subprocess
import sys


def test_a_fresh_interpreter_looks_recipes_up_without_loading_plugins_first() -> None:
    code = ("import sys; from compressor.engine.recipe import get_recipe, list_recipes; "
            "assert 'compressor.recipes' not in sys.modules; r = get_recipe('mvmr'); "
            "print(r.__module__, len(list_recipes()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-1500:]
    module, count = out.stdout.split()
    assert module == "compressor.recipes.mvmr" and int(count) >= 9
