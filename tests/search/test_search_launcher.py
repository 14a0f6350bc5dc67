"""launchers/search.py end to end on the demo space: outputs, resume, infeasible limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lwsl_ds.config import load_experiment
from lwsl_ds.search.loading import build_supernet
from lwsl_ds.space import load_arch

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "launchers" / "search.py"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("exp") / "supernet"  # the experiment's super-net folder
    run.mkdir()
    data = tmp_path_factory.mktemp("demo_data")
    from lwsl_ds.data.demo_dataset import generate

    generate(data, train_per_class=8, val_per_class=4, size=32)  # small: 120 JPEGs in ImageNet layout
    (run / "config.yaml").write_text(f"""
name: search-test
space: {{name: demo}}
data: {{source: folder, root: {data}, resolution: 32, backend: torchvision, num_workers: 0}}
search: {{population: 4, generations: 2, parents: 2, mutations: 1, crossovers: 1, recal_batches: 1,
         val_batches: 1, batch_size: 16, max_flops: 4000000}}
""")
    torch.manual_seed(0)
    torch.save(build_supernet(load_experiment(run / "config.yaml")).state_dict(), run / "supernet.pt")
    return run


def _launch(run: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(LAUNCHER), "--config", str(run / "config.yaml"),
                           "--checkpoint", str(run), "--no-progress", *extra],
                          capture_output=True, text=True, timeout=400, env=env, cwd=REPO)


def test_launcher_writes_best_arch_log_and_plot_then_resumes(run_dir):
    p = _launch(run_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    out = run_dir.parent / "search"  # next to the super-net folder, not inside it
    space, arch, doc = load_arch(out / "best_arch.yaml")
    assert space.name == "demo" and doc["flops"] <= 4_000_000
    records = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert len(records) == 8 and len({r["arch"] for r in records}) == 8
    assert all(r["flops"] <= 4_000_000 and 0.0 <= r["score"] <= 1.0 for r in records)
    assert doc["score"] == max(r["score"] for r in records) and arch.key in {r["arch"] for r in records}
    assert (out / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the FLOPs baseline beside the pick: the largest arch under the limit (exact: the demo space is enumerated)
    base = json.loads((out / "baseline.json").read_text())
    assert base["exact"] and base["flops"] <= 4_000_000 and base["flops"] >= max(r["flops"] for r in records)
    assert 0.0 <= base["score"] <= 1.0 and "largest arch under the limits: " + base["arch"] in p.stderr
    log = (out / "candidates.jsonl").read_text()
    # the same command again resumes a finished search: nothing is evaluated, outputs are kept
    p = _launch(run_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "generation 1/2" not in p.stderr and "8 evaluations" in p.stderr
    assert (out / "candidates.jsonl").read_text() == log


def test_launcher_reports_infeasible_limit_with_feasible_range(run_dir):
    p = _launch(run_dir, "--set", "search.max_flops=1000", "--out", str(run_dir.parent / "infeasible"))
    assert p.returncode == 2
    assert "max_macs 1,000 is below the smallest" in p.stderr and "Feasible: space 'demo'" in p.stderr
    assert not (run_dir.parent / "infeasible" / "candidates.jsonl").exists()


@pytest.mark.multirank
def test_launcher_two_ranks_equal_one_rank(run_dir):
    """torchrun with 2 ranks: same candidates, scores and best arch as the 1-rank run (real evaluator)."""
    one = run_dir.parent / "search" / "candidates.jsonl"
    if not one.exists():
        assert _launch(run_dir).returncode == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(LAUNCHER), "--config", str(run_dir / "config.yaml"), "--checkpoint", str(run_dir),
                        "--no-progress", "--out", str(run_dir.parent / "two")],
                       capture_output=True, text=True, timeout=400, env=env, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 rank(s)" in p.stderr
    assert (run_dir.parent / "two" / "candidates.jsonl").read_text() == one.read_text()


def test_launcher_local_estimator_switch(run_dir, tmp_path):
    """search.estimator=local_acc scores with the local decoder table: other scores, same outputs."""
    from lwsl_ds.search.local import LocalDecoderEvaluator
    from lwsl_ds.search.scoring import scoring_loaders

    p = _launch(run_dir, "--out", str(tmp_path / "local"), "--set", "search.estimator=local_acc")
    assert p.returncode == 0, p.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "local" / "candidates.jsonl").read_text().splitlines()]
    cfg = load_experiment(run_dir / "config.yaml")
    net = build_supernet(cfg)
    net.load_state_dict(torch.load(run_dir / "supernet.pt"))
    ev = LocalDecoderEvaluator(net, scoring_loaders(cfg)[1], val_batches=1)
    for r in records:
        assert r["score"] == pytest.approx(ev.score(r["arch"]), abs=1e-6)
    assert "(local_acc)" in p.stderr
    p = _launch(run_dir, "--out", str(tmp_path / "bad"), "--set", "search.estimator=top5")
    assert p.returncode == 2 and "search.estimator" in p.stderr
