"""search.score_table: lookups, canonical NAS-Bench-Macro keys, and clear errors."""

from __future__ import annotations

import json

import pytest

from lwsl_ds.config import ConfigError, parse_experiment
from lwsl_ds.search.scoring import TableScores, build_evaluator


def _table(tmp_path, estimator="top1", keys="nasbench_macro_canonical"):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"meta": {"estimator": estimator, "keys": keys}, "scores": {"12010000": 0.25}}))
    return p


def test_lookup_maps_a_key_to_its_canonical_form(tmp_path):
    t = TableScores(str(_table(tmp_path)), "top1")
    assert t.score("12010000") == 0.25
    assert t.score("12001000") == 0.25  # same network: the identity inside stage 2 moves to the end
    with pytest.raises(KeyError, match="not in score table"):
        t.score("22222222")


def test_mismatched_estimator_and_missing_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="holds local_acc scores"):
        TableScores(str(_table(tmp_path, "local_acc")), "top1")
    with pytest.raises(ConfigError, match="not found"):
        TableScores(str(tmp_path / "nope.json"), "top1")


def test_build_evaluator_uses_the_table_without_loading_data(tmp_path):
    cfg = parse_experiment({"space": {"name": "nasbench_macro"}, "data": {"root": str(tmp_path / "no-data")},
                            "search": {"score_table": str(_table(tmp_path, keys="all"))}})
    ev, val = build_evaluator(None, cfg)
    assert val is None and ev.score("12010000") == 0.25
    with pytest.raises(KeyError):
        ev.score("12001000")  # not a canonical table: no mapping


def test_local_estimator_refuses_infonce_in_the_config():
    with pytest.raises(ConfigError, match="search.estimator: local_acc needs a ce super-net"):
        parse_experiment({"search": {"estimator": "local_acc", "objective": "infonce"}})
