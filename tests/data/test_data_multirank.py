"""Two real ranks (separate processes): every sample exactly once per epoch, one shared shuffle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_testlib import unique_label_filelist

from lwsl_ds.data import demo_dataset
from lwsl_ds.data.plan import epoch_order

REPO = Path(__file__).resolve().parents[2]

WORKER = r"""
import json, os, sys
from lwsl_ds.data import DataConfig, build_loader
cfg = DataConfig(**json.loads(sys.argv[1]))
rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
out = {}
for backend in ("torchvision", "dali"):
    loader = build_loader(cfg, "train", batch_size=8, augment="train", rank=rank, world_size=world,
                          local_rank=local, seed=11, backend=backend, device="cpu")
    epochs = []
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        epochs.append([y.tolist() for _, y in loader])
    out[backend] = {"len": len(loader), "epochs": epochs, "num_samples": loader.num_samples,
                    "seed": loader.seed}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.multirank
def test_two_ranks_see_every_sample_once_per_epoch(tmp_path):
    demo = demo_dataset.generate(tmp_path / "demo", train_per_class=1, val_per_class=11)
    cfg = unique_label_filelist(demo, tmp_path, n=101)  # label == sample id, so labels identify samples
    cfg["num_workers"] = 1
    env_base = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(cfg)], cwd=REPO,
                              env={**env_base, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.split("RESULT ", 1)[1]))
    for backend in ("torchvision", "dali"):
        r0, r1 = results[0][backend], results[1][backend]
        assert r0["len"] == r1["len"] == 7 and r0["num_samples"] == 101
        for epoch in (0, 1):
            b0, b1 = r0["epochs"][epoch], r1["epochs"][epoch]
            assert len(b0) == len(b1) == 7, "ranks must agree on the number of batches"
            assert [len(b) for b in b0] == [8] * 6 + [3] and [len(b) for b in b1] == [8] * 6 + [2]
            seen = [s for b in b0 + b1 for s in b]
            assert sorted(seen) == list(range(101)), "every sample exactly once per epoch"
            # global batch k = rank 0's part then rank 1's part of the one (seed, epoch) permutation
            glob = [s for k in range(7) for s in b0[k] + b1[k]]
            assert glob == epoch_order(101, r0["seed"], epoch, True).tolist()
        assert r0["seed"] == r1["seed"]
        assert r0["epochs"][0] != r0["epochs"][1]
    assert results[0]["dali"]["epochs"] == results[0]["torchvision"]["epochs"]

