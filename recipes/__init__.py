"""SSL-KD recipes, one file each; importing this package registers every recipe module in it."""

from __future__ import annotations

import importlib
import pkgutil

from compressor.engine.recipe import RECIPES, Recipe, RecipeConfig, get_recipe, list_recipes


def _discover() -> None:
    # Every module in this package registers itself with @register_recipe; nothing central lists them.
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_discover()

__all__ = ["RECIPES", "Recipe", "RecipeConfig", "get_recipe", "list_recipes"]
