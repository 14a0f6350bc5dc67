"""A run's recorded config: training writes what it resolved; later phases take it and refuse only conflicts."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from lwsl_ds.config import ConfigError, parse_experiment, to_dict
from lwsl_ds.config.recorded import merge_with_run, recorded_yaml, resolve_num_classes, resolve_run_config
from lwsl_ds.search.loading import (build_supernet, experiment_for_arch, experiment_for_run, load_supernet_from_run,
                                    recorded_config)
from lwsl_ds.space import load_space

GIVEN = {"name": "sup", "space": {"name": "demo"}, "data": {"source": "demo"},
         "train": {"layer_groups": "auto", "auto_groups": 2, "micro_batches": "auto", "memory_budget_mib": 8.0},
         "search": {"max_flops": 5e6}}


def _resolved():
    cfg = parse_experiment(GIVEN)
    space = resolve_num_classes(load_space("demo"), cfg, 3)
    return cfg, resolve_run_config(cfg, space=space, data_resolution=32, groups=[[0, 1], [2, 3]],
                                   micro_batches={-1: 2, 0: 4})


def test_training_records_every_value_it_resolved():
    cfg, rec = _resolved()
    assert (rec.space.resolution, rec.space.num_classes, rec.data.resolution) == (32, 3, 32)
    assert rec.train.layer_groups == [[0, 1], [2, 3]]
    assert rec.train.micro_batches == {-1: 2, 0: 4} and rec.train.memory_budget_mib is None
    text = recorded_yaml(cfg, rec)
    assert text.startswith("# Resolved by training") and "space.num_classes: null -> 3" in text
    assert "train.micro_batches: auto -> {-1: 2, 0: 4}" in text
    assert parse_experiment(yaml.safe_load(text)) == rec  # the recorded file is a valid config of the same run
    # ... and so is its JSON form (checkpoint manifest, search_config.json), whose mapping keys are strings
    assert parse_experiment(json.loads(json.dumps(to_dict(rec)))) == rec
    # a class count the config sets wins over the data's; a config without derived values has no header
    fixed = parse_experiment({**GIVEN, "space": {"name": "demo", "num_classes": 7}})
    assert resolve_num_classes(load_space("demo", num_classes=7), fixed, 3).num_classes == 7
    assert recorded_yaml(rec, rec).startswith("name:")


def test_later_phases_take_the_run_and_refuse_only_conflicts():
    rec = to_dict(_resolved()[1])
    # nothing given: the run's config; phase settings on top; an explicit null means "the run's"
    assert merge_with_run(rec, None, where="x") == rec
    out = merge_with_run(rec, {"search": {"population": 4}, "space": {"num_classes": None}}, where="x")
    assert out["search"]["population"] == 4 and out["search"]["max_macs"] == 5e6 and out["space"]["num_classes"] == 3
    # the same value is no conflict; another one is, in one line naming both
    assert merge_with_run(rec, {"space": {"name": "demo", "num_classes": 3}}, where="x")["space"]["num_classes"] == 3
    for key, value in (("space.num_classes", 128), ("space.resolution", 64), ("train.objective", "infonce"),
                       ("data.resolution", 48)):
        section, name = key.split(".")
        with pytest.raises(ConfigError, match=rf"^cfg.yaml: {key}={value!r} conflicts .*{key}=") as e:
            merge_with_run(rec, {section: {name: value}}, where="cfg.yaml")
        assert "\n" not in str(e.value)
    # non-identity training keys may differ (a later phase does not train); value mappings are replaced whole
    out = merge_with_run(rec, {"train": {"micro_batches": {1: 2}, "strategy": "spos"}}, where="x")
    assert out["train"]["micro_batches"] == {1: 2} and out["train"]["strategy"] == "spos"
    # another data source (retraining on another data set) replaces the run's data section, not mixed in
    rec["data"].update(source="filelist", root="/in100", train_list="t.txt")
    out = merge_with_run(rec, {"data": {"source": "folder", "root": "/imagenet"}}, where="x")
    assert out["data"] == {"source": "folder", "root": "/imagenet", "resolution": 32}
    assert merge_with_run(rec, {"data": {"root": "/other"}}, where="x")["data"]["train_list"] == "t.txt"
    assert merge_with_run(None, {"name": "a"}, where="x") == {"name": "a"}  # a run without a config


def _fake_run(tmp_path):
    """A run directory as training leaves it: recorded config and the weights of a 3-class demo super-net."""
    run = tmp_path / "run"
    run.mkdir()
    cfg, rec = _resolved()
    (run / "config.yaml").write_text(recorded_yaml(cfg, rec))
    torch.save(build_supernet(rec).state_dict(), run / "supernet.pt")
    return run


def test_search_and_rank_rebuild_the_run_without_repeating_settings(tmp_path):
    run = _fake_run(tmp_path)
    cfg = experiment_for_run(run, None, ["search.population=60"])
    assert cfg.space.num_classes == 3 and cfg.search.population == 60 and cfg.search.max_flops == 5e6
    net = load_supernet_from_run(run, config=cfg)
    assert net.space.num_classes == 3
    # a config that leaves the class count open (like the one training was given) is completed by the run
    loose = tmp_path / "loose.yaml"
    loose.write_text(yaml.safe_dump({"space": {"name": "demo"}, "search": {"population": 70}}))
    cfg = experiment_for_run(run, loose)
    assert cfg.space.num_classes == 3 and cfg.search.population == 70
    assert load_supernet_from_run(run, config=parse_experiment({"space": {"name": "demo"}})).space.num_classes == 3
    with pytest.raises(ConfigError, match=r"space.num_classes=10 conflicts .*space.num_classes=3"):
        experiment_for_run(run, loose, ["space.num_classes=10"])
    with pytest.raises(ConfigError, match="no such run directory"):
        experiment_for_run(tmp_path / "nope")
    assert recorded_config(run)["space"]["num_classes"] == 3


def test_retraining_takes_the_search_config_beside_the_arch_or_the_run_it_names(tmp_path):
    run = _fake_run(tmp_path)
    search = tmp_path / "search"
    search.mkdir()
    arch = search / "best_arch.yaml"
    arch.write_text(yaml.safe_dump({"space": "demo", "arch": "1111", "checkpoint": str(run)}))
    assert experiment_for_arch(arch, None, ["retrain.max_steps=2"]).space.num_classes == 3  # via the run
    doc = {**to_dict(experiment_for_run(run)), "name": "from_search"}
    (search / "search_config.json").write_text(json.dumps(doc))
    assert experiment_for_arch(arch).name == "from_search"  # the search's own config wins
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump({"space": "demo", "arch": "1111"}))
    with pytest.raises(ConfigError, match="pass --config"):
        experiment_for_arch(alone)
    with pytest.raises(ConfigError, match="no such arch file"):
        experiment_for_arch(tmp_path / "missing.yaml")
