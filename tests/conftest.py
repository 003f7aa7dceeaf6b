"""Shared fixtures. Real data lives in ../shared/data beside the project; tests skip without it."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory):
    """A 3-degree synthetic world run through every stage (shared by the end-to-end tests)."""
    from soilresp.demo import run_demo

    out = tmp_path_factory.mktemp("demo3")
    rec = run_demo(out, resolution=3.0, seed=7, mc_samples=60)
    return out, rec
