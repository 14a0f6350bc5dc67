"""End to end: a super-net trained a few steps with the real strategy code gives a finite tau via launchers/rank.py."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lwsl_ds.config import parse_experiment, to_dict

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "launchers"))
import rank as rank_launcher  # noqa: E402


def _config(shared_data: Path, **rank):
    return parse_experiment({
        "space": {"name": "nasbench_macro"},
        "data": {"source": "cifar10", "root": str(shared_data / "cifar10-jpeg"), "max_per_class": 10,
                 "val_max_per_class": 20, "num_workers": 0},
        "train": {"strategy": "spos"},
        "search": {"recal_batches": 2, "batch_size": 25},
        "rank": {"num_archs": 8, "top_k": [3], "bootstrap": 100, "shift_images": 20,
                 "nasbench_path": str(shared_data / "nas-bench-macro" / "nas-bench-macro_cifar10.json"), **rank}})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, shared_data):
    """A nasbench_macro super-net after 10 SPOS steps on real CIFAR-10 images (plain-torch backend)."""
    from lwsl_ds.data import build_loader
    from lwsl_ds.engines import ReferenceBackend
    from lwsl_ds.search.loading import build_supernet
    from lwsl_ds.strategies import get_strategy, step_rng

    cfg = _config(shared_data)
    torch.manual_seed(0)
    net = build_supernet(cfg).train()
    strategy = get_strategy("spos")
    backend = ReferenceBackend(net, strategy, {"optimizer": {"type": "SGD", "params": {"lr": 0.02, "momentum": 0.9}},
                                               "gradient_clipping": 0.0}, total_steps=10)
    for step, (x, y) in enumerate(build_loader(cfg.data, "train", batch_size=16, augment="train")):
        strategy.step(net, x, y, backend, step_rng(0, step))
        if step == 9:
            break
    run = tmp_path_factory.mktemp("exp") / "supernet"
    run.mkdir()
    torch.save(net.state_dict(), run / "supernet.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    return run


def test_launcher_reports_finite_tau_and_shift(trained_run, capsys):
    rc = rank_launcher.main(["--config", str(trained_run / "config.yaml"), "--checkpoint", str(trained_run),
                             "--no-progress"])
    assert rc == 0
    out = trained_run.parent / "rank"  # next to the super-net folder
    doc = json.loads((out / "ranking.json").read_text())
    tau = doc["metrics"]["kendall_tau"]
    assert math.isfinite(tau["value"]) and -1 <= tau["value"] <= 1
    assert len(doc["rows"]) == 8 and all(0 <= r["score"] <= 1 for r in doc["rows"])
    assert "flops" in doc["floors"] and doc["meta"]["recal_batches"] == 2
    shift = json.loads((out / "shift.json").read_text())
    assert shift["names"] == ["id", "mb3k3", "mb6k5"] and shift["num_images"] == 20
    assert all(abs(shift["matrix"][j][j] - 1) < 1e-6 for j in range(3))
    assert (out / "ranking_scatter.png").is_file() and (out / "shift_heatmap.png").is_file()
    assert "kendall_tau" in capsys.readouterr().out
    band = doc["flops_band_tau"]  # within-budget ranking: 5 bands of the 8 archs (2, 2, 2, 1, 1)
    assert band["bands"] == 5 and [b["n"] for b in band["supernet"]["bands"]] == [2, 2, 2, 1, 1]
    assert set(band["flops_floor"]) == {"kendall_tau", "spearman_rho", "bands"}


def test_launcher_estimator_switch(trained_run, tmp_path, capsys):
    """search.estimator=local_acc ranks the same archs with the local decoders' table: other scores."""
    top1 = json.loads((trained_run / "rank" / "ranking.json").read_text()) if (trained_run / "rank").is_dir() else None
    rc = rank_launcher.main(["--config", str(trained_run / "config.yaml"), "--checkpoint", str(trained_run),
                             "--no-progress", "--out", str(tmp_path), "search.estimator=local_acc", "rank.shift=false"])
    assert rc == 0
    doc = json.loads((tmp_path / "ranking.json").read_text())
    assert doc["meta"]["estimator"] == "local_acc" and len(doc["rows"]) == 8
    assert all(0 <= r["score"] <= 1 for r in doc["rows"])
    if top1 is not None:
        assert [r["arch"] for r in doc["rows"]] == [r["arch"] for r in top1["rows"]]
        assert [r["score"] for r in doc["rows"]] != [r["score"] for r in top1["rows"]]
    assert "(local_acc estimator)" in capsys.readouterr().out


def test_launcher_rejects_bad_input_before_loading(trained_run, tmp_path, capsys):
    cfg = trained_run / "config.yaml"
    rc = rank_launcher.main(["--config", str(cfg), "--checkpoint", str(trained_run), "rank.archs=[22212202, 00000000]",
                             "rank.top_k=[1]"])
    assert rc == 2 and "22212202" in capsys.readouterr().err  # non-canonical key: no ground truth by default
    rc = rank_launcher.main(["--config", str(cfg), "--checkpoint", str(tmp_path / "nope")])
    assert rc == 2 and "no such run directory" in capsys.readouterr().err
    rc = rank_launcher.main(["--config", str(cfg), "--checkpoint", str(trained_run), "rank.num_arch=3"])
    assert rc == 2 and "did you mean 'num_archs'" in capsys.readouterr().err
