"""The CLI starts without torch, ONNX or the runtimes, and the export package's lazy names stay right."""

import subprocess
import sys

import pytest

from compressor.engine.recipe_cards import RecipeCard, cards_in_source, recipe_cards

# What the startup commands must not load: each costs a second or more (torch alone is slower to import
# than the whole `compress --help` should take). numpy too: nothing in --help needs it.
HEAVY = ("torch", "torchvision", "timm", "open_clip", "matplotlib", "tensorboard", "onnx", "onnxruntime",
         "openvino", "numpy")


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_cli_import_loads_no_heavy_library() -> None:
    # every command's defaults are read at import (ExportOptions, BenchOptions): that must stay cheap
    out = _run("import sys, compressor.cli.main; print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', "
               "'openvino', 'timm') if m in sys.modules))")
    assert out == "[]"


def test_package_names_are_the_functions_whichever_module_loads_first() -> None:
    # a submodule imported before the package attribute is read must not shadow the function
    out = _run("import compressor.export.bencher, compressor.export.exporter\n"
               "from compressor.export import bench, export_run, BenchOptions, FORMATS\n"
               "import types; print([isinstance(x, types.ModuleType) for x in (bench, export_run, BenchOptions)], "
               "callable(bench), 'onnx' in FORMATS)")
    assert out == "[False, False, False] True True"


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["list", "students"], ["list", "teachers"], ["list", "recipes"],
    ["list", "--help"], ["distill", "--help"],
    ["eval", "--help"], ["export", "--help"], ["bench", "--help"], ["run", "--help"], ["report", "--help"],
    ["embed", "--help"], ["pick", "--help"], ["cache", "--help"], ["data", "--help"], ["demo", "--help"],
])
def test_startup_commands_import_no_heavy_module(argv: list[str]) -> None:
    # the real entry point in a fresh interpreter; the module set is read after the command has run
    code = ("import sys, json\nfrom compressor.cli.main import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            f"print('LOADED', json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    last = _run(code).splitlines()[-1]
    assert last == "LOADED []", f"compress {' '.join(argv)} imported {last}"


def test_recipe_cards_read_from_source_are_the_registered_recipes() -> None:
    # the source reading of `compress list recipes` against the registry that importing the recipes fills
    from compressor.engine.recipe import list_recipes

    imported = [RecipeCard(r.name, r.kind, r.description) for r in list_recipes()]
    assert len(imported) >= 9 and recipe_cards() == imported


def test_a_card_not_written_as_literals_is_not_guessed() -> None:
    literal = "@register_recipe\nclass A:\n    name = 'a'\n    kind = 'peer'\n    description = 'x' 'y'\n"
    assert cards_in_source(literal) == [RecipeCard("a", "peer", "xy")]
    computed = literal.replace("description = 'x' 'y'", "description = 'x'.upper()")
    assert cards_in_source(computed) is None  # recipe_cards then imports the plug-in and asks the registry
    assert cards_in_source("class B:\n    name = 'b'\n") == []  # not registered: not a recipe
