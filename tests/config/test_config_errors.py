"""Malformed experiment configs fail before anything starts, naming key path, bad value and what is allowed."""

from __future__ import annotations

import pytest

from lwsl_ds.config import ConfigError, load_experiment, parse_experiment
from lwsl_ds.config.loader import apply_overrides

# (config dict, overrides, fragments the error message must contain)
MALFORMED = [
    ({"spce": {}}, [], ["spce", "unknown key", "space"]),
    ({"space": {"nme": "demo"}}, [], ["space.nme", "unknown key", "name"]),
    ({"space": {"resolution": "big"}}, [], ["space.resolution", "'big'"]),
    ({"space": {"resolution": 4}}, [], ["space.resolution", "4", ">= 8"]),
    ({"space": {"resolution": 4096}}, [], ["space.resolution", "<= 1024"]),
    ({"space": {"resolution": 32.5}}, [], ["space.resolution", "32.5", "integer"]),
    ({"space": {"num_classes": 1}}, [], ["space.num_classes", ">= 2"]),
    ({"space": {"num_classes": True}}, [], ["space.num_classes", "True"]),
    ({"space": "demo"}, [], ["space", "mapping", "'demo'"]),
    ({"seed": -3}, [], ["seed", "-3", ">= 0"]),
    ({"seed": "zero"}, [], ["seed", "'zero'"]),
    ({"name": 5}, [], ["name", "string", "5"]),
    ({"name": None}, [], ["name", "None"]),
    ({"run_root": ["a"]}, [], ["run_root", "string"]),
    ({"train": "fast"}, [], ["train", "mapping"]),
    ({"train": {"bogus_knob": 1}}, [], ["train.bogus_knob", "unknown key"]),
    ({"data": {"bogus_knob": 1}}, [], ["data.bogus_knob", "unknown key"]),
    ({"search": {"bogus_knob": 1}}, [], ["search.bogus_knob", "unknown key"]),
    ({"retrain": {"bogus_knob": 1}}, [], ["retrain.bogus_knob", "unknown key"]),
    ({"memory": {"bogus_knob": 1}}, [], ["memory.bogus_knob", "unknown key"]),
    ({"rank": {"bogus_knob": 1}}, [], ["rank.bogus_knob", "unknown key"]),
    ({}, ["space.resolution=tiny"], ["space.resolution", "'tiny'"]),
    ({}, ["seed"], ["seed", "key.path=value"]),
    ({}, ["space..name=x"], ["empty key"]),
    ({}, ["space.name.sub=1"], ["space.name", "expected a string"]),
    ({"space": {"name": "demo"}}, ["space.name.sub=1"], ["space.name", "not a mapping"]),
    ({}, ["space.resolution=[1, 2"], ["not valid YAML"]),
    ({}, ["space.bogus=1"], ["space.bogus", "unknown key"]),
    ([1, 2], [], ["top level must be a mapping"]),
]


@pytest.mark.parametrize("data,overrides,fragments", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
def test_malformed_config_names_the_problem(data, overrides, fragments):
    with pytest.raises(ConfigError) as err:
        parse_experiment(data, overrides)
    msg = str(err.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in error message {msg!r}"


def test_at_least_twenty_malformed_cases():
    assert len(MALFORMED) >= 20


def test_overrides_parse_values_and_nest():
    out = apply_overrides({"space": {"name": "demo"}}, ["space.resolution=64", "train.seed=7", "name=x y"])
    assert out == {"space": {"name": "demo", "resolution": 64}, "train": {"seed": 7}, "name": "x y"}
    cfg = parse_experiment({"space": {"name": "paper"}}, ["space.resolution=160"])
    assert cfg.space.resolution == 160 and cfg.space.name == "paper"


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: {name: demo\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_experiment(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_experiment(tmp_path / "missing.yaml")
    typo = tmp_path / "typo.yaml"
    typo.write_text("space:\n  nmae: demo\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(typo)
    assert str(typo) in str(err.value) and "space.nmae" in str(err.value)


def test_yaml_is_read_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_experiment(evil)


def test_shipped_configs_validate():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")):
        load_experiment(path)


def test_scientific_notation_without_dot_is_a_number():
    from lwsl_ds.config.sections.search import SearchConfig
    from lwsl_ds.config import from_dict

    assert from_dict(SearchConfig, {"max_flops": "3.3e8"}).max_flops == 3.3e8
    cfg = parse_experiment({"space": {"resolution": "2.24e2"}})
    assert cfg.space.resolution == 224
