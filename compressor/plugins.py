"""Loading the plug-ins: the recipes (and any third-party package) that register themselves with the core.

The core (models, data, engine, eval, losses) never imports a plug-in; it looks recipes up by name in
:data:`compressor.engine.recipe.RECIPES`, which imports every module named by a ``compressor.plugins``
entry point (our own ``compressor.recipes`` package is one) at its first lookup. So a recipe in another
package is one file plus one line in that package's ``pyproject.toml``::

    [project.entry-points."compressor.plugins"]
    my_recipe = "my_package.my_recipe"
"""

from __future__ import annotations


def load_plugins() -> None:
    """Import every recipe plug-in now rather than at the first lookup (the registry finds them itself).

    The recipe registry (:data:`compressor.engine.recipe.RECIPES`) loads the ``compressor.plugins`` entry
    points — the built-in ``compressor.recipes`` package among them — the first time it is asked for a
    name; this only moves that moment earlier, so there is one mechanism, not two.
    """
    from compressor.engine.recipe import RECIPES

    RECIPES.names()
