"""Per-biome Rs models (method step 4): Eq 1-4, Eq 5 selection, RF/SVR/ANN/QRF, nested CV."""

from soilresp.models.base import (FAMILIES, BiomeModel, load_biome_model, load_biome_models,
                                  save_biome_model)
from soilresp.models.cv import SCHEMES, location_groups, nested_oof, oof_predict
from soilresp.models.fit import FitResult, candidate_columns, fit_biome, fit_biomes, select_biome
from soilresp.models.ml import ML_FAMILIES, PARAM_GRIDS, make_estimator, make_search
from soilresp.models.nonlinear import FORMS, FitError, NonlinearRs, predict_form
from soilresp.models.selection import eq5_scores, stepwise_predictors

__all__ = ["FAMILIES", "BiomeModel", "load_biome_model", "load_biome_models", "save_biome_model",
           "FitResult", "candidate_columns", "fit_biome", "fit_biomes", "ML_FAMILIES", "PARAM_GRIDS",
           "make_estimator", "make_search", "FORMS", "FitError", "NonlinearRs", "predict_form",
           "SCHEMES", "location_groups", "nested_oof", "eq5_scores", "oof_predict", "select_biome",
           "stepwise_predictors"]
