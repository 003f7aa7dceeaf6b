"""First-hour behaviour: fitting warnings are tallied into one line per biome and warning type
instead of hundreds of lines, and optional extras fail with one line naming them."""

from __future__ import annotations

import warnings

import pytest

from soilresp.errors import ConfigError, SoilrespError
from soilresp.models.stage import _check_extras, tally_warnings, warning_lines


def test_fitting_warnings_are_counted_per_biome_and_type(recwarn):
    from sklearn.exceptions import ConvergenceWarning

    seen = []
    with tally_warnings(lambda *a: seen.append(a)) as (prog, counts):
        prog("fit biome  1 tundra", 0, 2)
        for _ in range(5):
            warnings.warn("lbfgs failed to converge", ConvergenceWarning)
        prog("fit biome  2 boreal", 0, 2)
        warnings.warn("did not converge", ConvergenceWarning)
        warnings.warn("overflow encountered in dot", RuntimeWarning)
    assert seen[0] == ("fit biome  1 tundra", 0, 2)  # progress still reported
    assert warning_lines(counts) == [
        "fit biome  1 tundra: 5 x ConvergenceWarning",
        "fit biome  2 boreal: 1 x ConvergenceWarning",
        "fit biome  2 boreal: 1 x RuntimeWarning",
    ]
    assert not [w for w in recwarn if issubclass(w.category, ConvergenceWarning)]


def test_other_warnings_still_reach_the_user():
    with pytest.warns(UserWarning, match="keep me"):
        with tally_warnings(lambda *a: None) as (_, counts):
            warnings.warn("keep me", UserWarning)
    assert not counts


def test_ml_families_without_the_ml_extra_name_the_config_key(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "skops" else real(name, *a))
    _check_extras(["nls"])  # the core family needs nothing more
    with pytest.raises(ConfigError, match=r"\[models\] families.*soilresp\[ml\]"):
        _check_extras(["nls", "rf"])


def test_report_without_matplotlib_is_one_line(monkeypatch):
    import importlib.util

    from soilresp.pipeline import need_extra

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(SoilrespError, match=r"soilresp\[report\]"):
        need_extra("matplotlib", "report", "the report stage")
