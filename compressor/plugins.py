"""Loading the plug-ins: the recipes (and any third-party package) that register themselves with the core.

The core (models, data, engine, eval, losses) never imports a plug-in; it looks recipes up by name in
:data:`compressor.engine.recipe.RECIPES`. This module sits beside the CLI, above both: it imports the
built-in recipe package (``recipes/``, installed as ``compressor.recipes``, whose ``__init__`` imports
every module in it) and every module named by a ``compressor.plugins`` entry point, so a recipe in
another package is one file plus one line in that package's ``pyproject.toml``::

    [project.entry-points."compressor.plugins"]
    my_recipe = "my_package.my_recipe"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

BUILTIN = ("compressor.recipes",)  # packages, not recipe names: each registers whatever files it holds
# (the same package is the `builtin-recipes` entry point, so the registry also finds it by itself)
_loaded = False


def load_plugins() -> None:
    """Import the built-in plug-in packages and every ``compressor.plugins`` entry point (once)."""
    global _loaded
    if _loaded:
        return
    for name in BUILTIN:
        importlib.import_module(name)
    for ep in entry_points(group="compressor.plugins"):
        ep.load()
    _loaded = True
