"""Per-biome Rs models (method step 4): nonlinear regressions (Eq 1-4), Eq 5 selection, CV."""

from soilresp.models.base import (FAMILIES, BiomeModel, load_biome_model, load_biome_models,
                                  save_biome_model)
from soilresp.models.nonlinear import FORMS, FitError, NonlinearRs, predict_form
from soilresp.models.selection import BiomeSelection, cross_validate, eq5_scores, select_biome

__all__ = ["FAMILIES", "BiomeModel", "load_biome_model", "load_biome_models", "save_biome_model",
           "FORMS", "FitError", "NonlinearRs", "predict_form", "BiomeSelection",
           "cross_validate", "eq5_scores", "select_biome"]
