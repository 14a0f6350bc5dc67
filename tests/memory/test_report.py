"""The memory report command and the memory config section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lwsl_ds.config.schema import ConfigError, from_dict
from lwsl_ds.config.sections.memory import MemoryConfig

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "profiling"))


def test_report_writes_table_json_and_charts(tmp_path: Path) -> None:
    import memory_report

    rc = memory_report.main(["--space", "demo", "--resolution", "16", "--batch", "4", "--balance", "off",
                             "--out", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    res = doc["results"]["4"]
    assert set(res) == {"spos", "greedy", "non_greedy"}
    assert res["spos"]["pct_of_spos"]["activations"] == pytest.approx(100.0)
    assert res["greedy"]["pct_of_spos"]["activations"] < 100.0
    # the device-level view adds the same fixed overhead everywhere, so its ratios are closer to 100%
    assert res["greedy"]["pct_of_spos"]["device"] > res["greedy"]["pct_of_spos"]["with_states"]
    assert "skipped" in res["spos"]["measured"] or "measured_peak_bytes" in res["spos"]["measured"]
    for s in ("spos", "greedy", "non_greedy"):
        assert (tmp_path / f"layers_{s}_b4.png").stat().st_size > 1000
    assert "| greedy |" in (tmp_path / "report.md").read_text()


def test_report_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import memory_report

    assert memory_report.main(["--space", "demo", "--strategies", "spoz", "--out", str(tmp_path)]) == 2
    assert "spoz" in capsys.readouterr().err
    assert memory_report.main(["--space", "demo", "--groups", "9", "--out", str(tmp_path)]) == 2
    assert "--groups" in capsys.readouterr().err


@pytest.mark.parametrize("bad,needle", [({"strategies": ["sgd"]}, "memory.strategies"),
                                        ({"batch_sizes": [0]}, "memory.batch_sizes"),
                                        ({"floor_factor": 0.5}, "floor_factor")])
def test_memory_config_errors_name_the_key(bad: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        from_dict(MemoryConfig, bad, "memory")


@pytest.mark.parametrize("old,new", [
    ({"balance": "auto", "budget_mib": 8}, {"micro_batches": "auto", "memory_budget_mib": 8.0}),
    ({"balance": "explicit", "micro_batches": {-1: 4}}, {"micro_batches": {-1: 4}}),
    ({"checkpoint_groups": [1]}, {"activation_checkpointing": [1]}),
    ({"offload_groups": True}, {"offload_inactive": True}),
    # an older run's recorded config lists every key at its default: nothing moves
    ({"balance": "off", "budget_mib": None, "micro_batches": {}, "checkpoint_groups": [], "offload_groups": False},
     {"micro_batches": "off", "memory_budget_mib": None, "activation_checkpointing": False,
      "offload_inactive": False})])
def test_old_memory_lever_keys_load_as_aliases_of_train(old: dict, new: dict) -> None:
    """memory.{balance, micro_batches, budget_mib, checkpoint_groups, offload_groups} (the levers' second
    vocabulary before) load, as their train.* keys; training and the report read only those."""
    from lwsl_ds.config.loader import parse_experiment
    from lwsl_ds.memory.from_config import memory_settings

    cfg = parse_experiment({"space": {"name": "demo"}, "train": {"strategy": "greedy", "layer_groups": "per_layer"},
                            "memory": {"strategies": ["greedy"], **old}})
    assert {k: getattr(cfg.train, k) for k in new} == new and cfg.memory.strategies == ["greedy"]
    settings = memory_settings(cfg)
    assert settings["budget_mib"] == cfg.train.memory_budget_mib
    assert settings["balance"] == ("auto" if cfg.train.micro_batches == "auto" else "off")
    assert settings["checkpoint_groups"] == cfg.train.levers.checkpoint_groups(settings["groups"])
    assert settings["offload"] == ([0, 1, 2, 3] if cfg.train.offload_inactive else None)


def test_lever_alias_as_a_command_line_override() -> None:
    from lwsl_ds.config.loader import parse_experiment

    cfg = parse_experiment({"train": {"layer_groups": [[0, 1], [2, 3]]}}, ["memory.checkpoint_groups=[1]"])
    assert cfg.train.activation_checkpointing == [1] and cfg.train.levers.checkpoint_layers([[0, 1], [2, 3]]) == [2, 3]


@pytest.mark.parametrize("data,needle", [
    ({"memory": {"balance": "auto"}, "train": {"micro_batches": "off"}}, "memory.balance: an alias of "
                                                                        "train.micro_batches"),
    ({"memory": {"balance": "explicit"}}, "memory.micro_batches: set together with memory.balance"),
    ({"memory": {"micro_batches": {0: 2}}}, "memory.micro_batches"),
    ({"memory": {"balance": "sometimes"}}, "memory.balance"),
    ({"memory": {"budget_mib": 8}}, "train.memory_budget_mib: only used with train.micro_batches: auto")])
def test_lever_aliases_refuse_conflicts_and_bad_values(data: dict, needle: str) -> None:
    from lwsl_ds.config.loader import parse_experiment

    with pytest.raises(ConfigError, match=needle):
        parse_experiment(data)


def test_report_from_an_experiment_config_with_flag_overrides(tmp_path: Path) -> None:
    """--config takes space, resolution, strategies, layer groups and levers from the experiment, batch / ZeRO
    from its ds_config; flags override; the output defaults to the experiment's memory folder."""
    import memory_report

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"name: mem\nrun_root: {tmp_path / 'runs'}\nspace: {{name: demo, resolution: 16}}\n"
                   "train: {strategy: greedy, layer_groups: [[0, 1], [2, 3]], offload_inactive: [1]}\n"
                   "memory: {strategies: [spos]}\n")
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"train_micro_batch_size_per_gpu": 4, "zero_optimization": {"stage": 1}}))
    assert memory_report.main(["--config", str(cfg), "--ds_config", str(ds), "--balance", "off"]) == 0
    out = tmp_path / "runs" / "mem" / "memory"
    doc = json.loads((out / "report.json").read_text())
    assert doc["space"] == "demo" and doc["resolution"] == 16 and doc["groups"] == [[0, 1], [2, 3]]
    assert doc["zero_stage"] == 1 and doc["offloaded_groups"] == [1] and set(doc["results"]["4"]) == {"spos", "greedy"}
    assert doc["overhead_bytes"] in (None, 723 * 2**20)  # one device overhead everywhere (no GPU: the default)
    # flags win over the experiment
    assert memory_report.main(["--config", str(cfg), "--batch", "2", "--groups", "1", "--offload", "--balance", "off",
                               "--out", str(tmp_path / "flags")]) == 0
    doc = json.loads((tmp_path / "flags" / "report.json").read_text())
    assert doc["groups"] == [[0, 1, 2, 3]] and set(doc["results"]) == {"2"} and doc["offloaded_groups"] == [0]


def test_device_overhead_is_one_number_in_config_report_and_docs() -> None:
    import memory_report

    assert MemoryConfig().device_overhead_mib == memory_report.DEFAULT_OVERHEAD_MIB == 723.0
    assert "**723 MiB**" in (REPO / "docs" / "memory.md").read_text()


def test_report_of_a_training_run_reads_its_recorded_levers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--run: space, groups, batch, ZeRO stage and the levers come from the run's recorded config (train.*,
    one of them given there as its old memory.* alias); a flag that disagrees with the run is refused."""
    import memory_report
    import yaml

    sup = tmp_path / "supernet"
    sup.mkdir()
    (sup / "config.yaml").write_text(yaml.safe_dump({
        "name": "mem", "run_root": str(tmp_path), "space": {"name": "demo", "resolution": 16, "num_classes": 10},
        "train": {"strategy": "greedy", "layer_groups": [[0, 1], [2, 3]], "offload_inactive": [1]},
        "memory": {"strategies": ["greedy"], "checkpoint_groups": [0]}}))
    (sup / "supernet.pt").write_bytes(b"")  # the report reads the config beside the weights, not the weights
    (sup / "ds_config.json").write_text(json.dumps({"train_micro_batch_size_per_gpu": 4,
                                                    "zero_optimization": {"stage": 1}}))
    assert memory_report.main(["--run", str(sup), "--strategies", "greedy", "--balance", "off",
                               "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["groups"] == [[0, 1], [2, 3]] and doc["zero_stage"] == 1 and doc["offloaded_groups"] == [1]
    assert set(doc["results"]) == {"4"} and doc["results"]["4"]["greedy"]["checkpointed_layers"] == [0, 1]
    capsys.readouterr()
    assert memory_report.main(["--run", str(sup), "--zero", "2", "--out", str(tmp_path / "x")]) == 2
    assert "conflicts with run" in capsys.readouterr().err
