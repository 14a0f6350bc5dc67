"""launchers/groundtruth.py: K archs trained briefly through the retraining loop give a truth file that
load_truth_file reads; a rerun trains nothing again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lwsl_ds.config import ConfigError
from lwsl_ds.ranking.groundtruth import TruthSettings, pick_archs
from lwsl_ds.ranking.truth import load_truth_file
from lwsl_ds.space import load_space

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    ds = json.loads((REPO / "ds_configs" / "retrain_cpu.json").read_text())
    ds["train_micro_batch_size_per_gpu"] = 8
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    cmd = [sys.executable, str(REPO / "launchers" / "groundtruth.py"), "--config", str(REPO / "configs" / "demo.yaml"),
           "--ds_config", str(tmp_path / "ds.json"), "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):  # a child picks its own
        env.pop(k, None)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_generated_truth_round_trips_and_resumes(tmp_path):
    out = tmp_path / "gt"
    args = ("--archs", "3", "--steps", "2", "--strata", "3", "data.max_per_class=8", "data.val_max_per_class=3")
    r = _run(tmp_path, out, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    space = load_space("demo")
    truth = load_truth_file(out / "truth.csv", space)
    assert len(truth) == 3 and all(0.0 <= a <= 1.0 for a in truth.accuracy.values())
    assert truth.flops is not None and truth.params is not None  # fvcore cost table, kept for the floor
    listed = [ln.split("#")[0].strip() for ln in (out / "archs.txt").read_text().splitlines()]
    assert sorted(listed) == truth.keys()
    for key in listed:
        final = json.loads((out / key / "final.json").read_text())
        assert final["step"] == 2 and final["samples"] == 30  # 3 val images x 10 classes
    meta = json.loads((out / "meta.json").read_text())
    assert meta["steps"] == 2 and meta["steps_per_epoch"] == 10
    # a rerun finds every arch done and rewrites the same table without training
    before = (out / "truth.csv").read_text()
    stamps = {k: (out / k / "final.json").stat().st_mtime_ns for k in listed}
    r2 = _run(tmp_path, out, *args)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert (out / "truth.csv").read_text() == before and "done before" in r2.stderr
    assert stamps == {k: (out / k / "final.json").stat().st_mtime_ns for k in listed}


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="num_archs 1 must be >= 2"):
        TruthSettings(num_archs=1).check()
    with pytest.raises(ConfigError, match="steps 0"):
        TruthSettings(steps=0).check()
    r = _run(tmp_path, tmp_path / "gt", "--archs", "4", "--steps", "1", "--strata", "9")
    assert r.returncode == 2 and "strata 9 must be in 1..num_archs (4)" in r.stderr


def test_arch_sample_is_seeded_and_spans_the_flops_range():
    space = load_space("demo")
    a = pick_archs(space, TruthSettings(num_archs=6, seed=3))
    assert a == pick_archs(space, TruthSettings(num_archs=6, seed=3)) and len(set(a)) == 6
    assert a != pick_archs(space, TruthSettings(num_archs=6, seed=4))


def test_config_comes_from_a_super_net_run_when_given(tmp_path):
    """--checkpoint: the run's recorded config is the base (as for search/rank), --out defaults beside it."""
    from lwsl_ds.config import load_experiment, to_dict
    from lwsl_ds.ranking.groundtruth import default_out, experiment_loader

    import yaml

    sup = tmp_path / "exp" / "supernet"
    sup.mkdir(parents=True)
    (sup / "supernet.pt").write_bytes(b"")  # only the recorded config is read
    recorded = to_dict(load_experiment(REPO / "configs" / "demo.yaml", ["space.num_classes=7", "retrain.epochs=3"]))
    (sup / "config.yaml").write_text(yaml.safe_dump(recorded))
    exp = experiment_loader(None, sup, ["retrain.lr_reference_batch=64"])(["retrain.max_steps=2"])
    assert exp.space.num_classes == 7 and exp.retrain.epochs == 3  # from the run, not repeated on the command
    assert exp.retrain.lr_reference_batch == 64 and exp.retrain.max_steps == 2
    assert default_out(None, sup, []) == tmp_path / "exp" / "groundtruth"
    with pytest.raises(ConfigError, match="pass --config"):
        experiment_loader(None, None)
    with pytest.raises(ConfigError, match="--out is required without --checkpoint"):
        default_out(REPO / "configs" / "demo.yaml", None, [])
