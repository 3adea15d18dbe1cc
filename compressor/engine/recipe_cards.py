"""Recipe cards: the name, kind and one-line description of every installed recipe, read without torch.

``compress list recipes`` must stay instant, but importing a recipe imports torch (seconds). A recipe declares
its card as three string literals on its ``@register_recipe`` class (``name``, ``kind``, ``description``), so
the cards are read from the plug-in packages' source with :mod:`ast`. A plug-in whose card is not written as
literals (computed, inherited) is imported instead and read from :data:`~compressor.engine.recipe.RECIPES`:
the listing is then slower, never wrong. A test checks the cards against the imported registry.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

PLUGIN_GROUP = "compressor.plugins"  # the entry-point group that RECIPES loads (compressor/engine/recipe.py)
CARD_FIELDS = ("name", "kind", "description")


@dataclass(frozen=True)
class RecipeCard:
    name: str
    kind: str
    description: str


def _literal_fields(cls: ast.ClassDef) -> dict[str, str]:
    found: dict[str, str] = {}
    for stmt in cls.body:
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else \
            stmt.target if isinstance(stmt, ast.AnnAssign) else None
        value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id in CARD_FIELDS and isinstance(value, ast.Constant) \
                and isinstance(value.value, str):
            found[target.id] = value.value
    return found


def _is_register(deco: ast.expr) -> bool:
    return (isinstance(deco, ast.Name) and deco.id == "register_recipe") or \
        (isinstance(deco, ast.Attribute) and deco.attr == "register_recipe")


def cards_in_source(source: str) -> list[RecipeCard] | None:
    """The cards of the ``@register_recipe`` classes in one module's source; None if one is not literal."""
    cards = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and any(_is_register(d) for d in node.decorator_list):
            fields = _literal_fields(node)
            if set(fields) != set(CARD_FIELDS):
                return None
            cards.append(RecipeCard(**fields))
    return cards


def _module_files(module: str) -> list[Path] | None:
    """The source files of a plug-in module, or of every public module of a plug-in package."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    if spec.submodule_search_locations is None:
        return [Path(spec.origin)]
    files = [Path(spec.origin)]
    for location in spec.submodule_search_locations:
        for mod in pkgutil.iter_modules([location]):
            path = Path(location, f"{mod.name}.py")
            if mod.name.startswith("_"):
                continue
            if mod.ispkg or not path.is_file():
                return None  # a sub-package or a compiled module: import it instead
            files.append(path)
    return files


def _plugin_cards(module: str) -> list[RecipeCard] | None:
    files = _module_files(module)
    if files is None:
        return None
    cards: list[RecipeCard] = []
    for path in files:
        found = cards_in_source(path.read_text(encoding="utf-8"))
        if found is None:
            return None
        cards.extend(found)
    return cards


def recipe_cards() -> list[RecipeCard]:
    """Every installed recipe's card, sorted by name (torch is imported only for a plug-in read by import)."""
    cards: list[RecipeCard] = []
    for ep in entry_points(group=PLUGIN_GROUP):
        found = _plugin_cards(ep.value.split(":")[0])
        if found is None:  # not readable as source: the registry's answer, at the price of the import
            from compressor.engine.recipe import list_recipes

            return [RecipeCard(r.name, r.kind, r.description) for r in list_recipes()]
        cards.extend(found)
    return sorted(cards, key=lambda c: c.name)
