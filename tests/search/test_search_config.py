"""search.max_macs / min_macs and their old names max_flops / min_flops: both load, only the new one is written."""

from __future__ import annotations

import pytest
import yaml

from lwsl_ds.config import ConfigError, load_experiment, parse_experiment, to_dict
from lwsl_ds.config.schema import from_dict
from lwsl_ds.config.sections.search import SearchConfig
from lwsl_ds.search import constraints_from_config
from lwsl_ds.search.loading import experiment_for_run


def test_old_and_new_names_load_the_same_limits():
    new = from_dict(SearchConfig, {"max_macs": 3.3e8, "min_macs": 1e8})
    old = from_dict(SearchConfig, {"max_flops": "3.3e8", "min_flops": 1e8})
    assert new == old and old.max_macs == 3.3e8 and old.min_macs == 1e8
    assert old.max_flops == 3.3e8  # read-only old name for code that still asks for it
    assert constraints_from_config(old).describe() == "100.0M <= flops <= 330.0M"
    written = to_dict(old)
    assert written["max_macs"] == 3.3e8 and "max_flops" not in written and "min_flops" not in written
    # both names with the same value is one limit; with different values, one line naming both keys
    assert from_dict(SearchConfig, {"max_flops": 5e6, "max_macs": 5e6}).max_macs == 5e6
    with pytest.raises(ConfigError, match=r"search\.max_flops \(4000000.0\) is the old name of search\.max_macs"):
        parse_experiment({"search": {"max_flops": 4e6, "max_macs": 5e6}})
    with pytest.raises(ConfigError, match="search.min_macs .* is above search.max_macs"):
        from_dict(SearchConfig, {"min_flops": 5, "max_macs": 3})


def test_old_name_on_top_of_a_run_that_recorded_the_new_one_replaces_it(tmp_path):
    """A phase's override in the old name replaces the run's recorded limit (and the reverse), no conflict."""
    run = tmp_path / "supernet"
    run.mkdir()
    (run / "supernet.pt").write_bytes(b"")  # only the recorded config is read here
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(parse_experiment({"search": {"max_macs": 4e6}}))))
    assert experiment_for_run(run, None, ["search.max_flops=3e6"]).search.max_macs == 3e6
    (run / "config.yaml").write_text("search: {max_flops: 4.0e+6}\n")  # a run recorded before the rename
    assert experiment_for_run(run, None, ["search.max_macs=3e6"]).search.max_macs == 3e6
    assert experiment_for_run(run, None, []).search.max_macs == 4e6
    cfg = tmp_path / "phase.yaml"
    cfg.write_text("search: {max_macs: 5.0e+6}\n")
    with pytest.raises(ConfigError, match="old name of search.max_macs"):  # one layer naming both differently
        experiment_for_run(run, cfg, ["search.max_flops=3e6"])
    with pytest.raises(ConfigError, match="old name of search.max_macs"):
        load_experiment(cfg, ["search.max_flops=3e6"])
