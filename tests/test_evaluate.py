"""`soilresp evaluate`: a finished run scored on an observation table."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from soilresp.cli import app


@pytest.fixture(scope="module")
def tiny_run(tiny_reference, tmp_path_factory):
    """A copy of the shared tiny synthetic run (conftest.tiny_reference: tests/_tinyworld.py's
    world through every stage); evaluate writes below its output folder."""
    from conftest import copy_tiny_reference

    root = tmp_path_factory.mktemp("evalworld")
    cfg = copy_tiny_reference(tiny_reference[0], root)
    cfg.rename(root / "soilresp.toml")
    return root, None


def test_evaluate_scores_match_predictions_and_baseline(tiny_run):
    from soilresp.config import BIOMES, load_config
    from soilresp.evaluate import evaluate
    from soilresp.models import load_biome_models

    out, _ = tiny_run
    cfg = load_config(out / "soilresp.toml")
    res = evaluate(cfg, out / "world" / "srdb-data.csv")
    pred = pd.read_parquet(res["dir"] / "predictions.parquet")
    sc = res["scores"]
    assert (res["dir"] / "evaluate.png").stat().st_size > 10_000
    # the same rows as the training table (same field rules, cell rule and drivers)
    train = pd.read_parquet(cfg.output_dir / "sites" / "training.parquet")
    assert len(pred) == len(train)
    np.testing.assert_array_equal(pred["biome"].to_numpy(), train["biome"].to_numpy())
    # scores recomputed independently from the predictions
    ok = pred[(pred.biome > 0) & np.isfinite(pred.predicted) & np.isfinite(pred.rs)]
    y, p = ok["rs"].to_numpy(), ok["predicted"].to_numpy()
    row = sc[(sc.biome == 0) & (sc.subset == "all")].iloc[0]
    assert row.n == len(ok)
    assert row.rmse == pytest.approx(np.sqrt(np.mean((p - y) ** 2)))
    assert row.r2 == pytest.approx(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))
    assert row.bias == pytest.approx(np.mean(p - y))
    # the baseline is each biome's mean observed Rs, from the model files
    models = load_biome_models(cfg.output_dir / "models", BIOMES)
    for code, g in ok.groupby("biome"):
        assert g["baseline"].unique() == pytest.approx([models[code].meta["biome_mean_rs"]])
    ins = sc[(sc.biome == 0) & (sc.subset == "inside_aoa")].iloc[0].n
    outs = sc[(sc.biome == 0) & (sc.subset == "outside_aoa")].iloc[0].n
    assert ins + outs <= row.n and ins > 0
    assert row.rmse < row.baseline_rmse        # the models beat the biome mean


def test_evaluate_cli(tiny_run):
    out, _ = tiny_run
    r = CliRunner().invoke(app, ["evaluate", str(out / "soilresp.toml"), "--observations",
                                 str(out / "world" / "srdb-data.csv")])
    assert r.exit_code == 0, r.output
    assert "scores and figure in" in r.output
    r = CliRunner().invoke(app, ["evaluate", str(out / "soilresp.toml"), "--observations",
                                 str(out / "nope.csv")])
    assert r.exit_code != 0 and "nope.csv" in r.output and "Traceback" not in r.output
