"""The recipe contract, re-exported for recipe files: it lives in the core, :mod:`compressor.engine.recipe`."""

from compressor.engine.recipe import (
    KINDS,
    RECIPES,
    SHORT_RUN_CROP,
    SHORT_RUN_OPTIMIZER,
    DataInfo,
    Recipe,
    RecipeConfig,
    ShortRunCropConfig,
    StepOutput,
    build_optimizer,
    get_recipe,
    list_recipes,
    make_config,
    register_recipe,
)

__all__ = ["KINDS", "RECIPES", "SHORT_RUN_CROP", "SHORT_RUN_OPTIMIZER", "DataInfo", "Recipe", "RecipeConfig",
           "ShortRunCropConfig", "StepOutput", "build_optimizer", "get_recipe", "list_recipes", "make_config",
           "register_recipe"]
