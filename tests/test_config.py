import tomllib

import pytest

from soilresp.config import EXAMPLE_TOML, config_from_dict, load_config
from soilresp.errors import ConfigError


def test_example_is_valid_and_commented(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(EXAMPLE_TOML)
    cfg = load_config(p)
    assert cfg.grid.resolution == 0.5
    assert cfg.drivers.sources[1].aggregation == "sum"
    assert EXAMPLE_TOML.count("#") > 20


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[run]\nseeed = 3\n")
    with pytest.raises(ConfigError, match=r"c.toml: unknown key 'run.seeed'"):
        load_config(p)


def test_bad_value_is_named(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[grid]\nresolution = -1\n")
    with pytest.raises(ConfigError, match=r"'grid.resolution'.*-1"):
        load_config(p)


@pytest.mark.parametrize("data, needle", [
    ({"run": {"years": [2014, 2000]}}, "first <= last"),
    ({"grid": {"resolution": 0.7}}, "not a multiple"),
    ({"drivers": {"sources": [{"variable": "tas", "path": "a"}, {"variable": "tas", "path": "b"}]}}, "listed twice"),
    ({"models": {"families": ["xgboost"]}}, "models.families"),
    ({"trends": {"alpha": 1.5}}, "trends.alpha"),
])
def test_invalid_configs(data, needle):
    with pytest.raises(ConfigError, match=needle):
        config_from_dict(data)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    p = tmp_path / "bad.toml"
    p.write_text("[run\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(p)


def test_paths_resolve_against_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "c.toml"
    p.write_text('[run]\noutput_dir = "out"\n')
    cfg = load_config(p)
    assert cfg.output_dir == tmp_path / "sub" / "out"


def test_section_hash_changes_only_with_section():
    a = config_from_dict({"trends": {"alpha": 0.05}})
    b = config_from_dict({"trends": {"alpha": 0.10}})
    assert a.section_hash("models") == b.section_hash("models")
    assert a.section_hash("trends") != b.section_hash("trends")
    assert tomllib.loads(EXAMPLE_TOML)["run"]["seed"] == 42
    c = config_from_dict({"product": {"mc_samples": 10}})
    assert c.section_hash("product.region_bounds") == a.section_hash("product.region_bounds")
    assert c.section_hash("product") != a.section_hash("product")


def test_example_config_is_consistent_across_sections():
    """Every variable another section names is a [[drivers.sources]] variable (issue 18: the
    example passed --check, then died at attribution on 'spei')."""
    import tomllib

    doc = tomllib.loads(EXAMPLE_TOML)
    have = {s["variable"] for s in doc["drivers"]["sources"]}
    used = set(doc["attribution"]["drivers"]) | {doc["product"]["region_temperature"]}
    for k in ("temperature", "moisture", "productivity"):
        used |= set(doc["models"].get(k, []))
    assert used <= have, used - have
