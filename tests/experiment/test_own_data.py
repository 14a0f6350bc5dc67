"""Your own data set, end to end through the real launchers: a folder of 28 px grayscale PNGs -> super-net
training -> search -> retraining -> ``lwsl report`` -> ``lwsl predict`` with the exported preprocessing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("hstripes", "vstripes", "blob", "ring")


def write_gray_pngs(root: Path, train: int = 12, val: int = 6, size: int = 28) -> Path:
    """root/{train,val}/<class>/<n>.png: 8-bit grayscale PNGs, one simple pattern per class plus noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    patterns = [128 + 100 * np.sin(yy * 1.2), 128 + 100 * np.sin(xx * 1.2), 255 * (r < size / 4),
                255 * ((r > size / 4) & (r < size / 3))]
    for split, n in (("train", train), ("val", val)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.clip(patterns[c] + rng.normal(0, 30, (size, size)), 0, 255).astype(np.uint8)
                Image.fromarray(img, mode="L").save(folder / f"{i:03d}.png")
    return root


def _run(*cmd: str, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "LWSL_FAULT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd[:2]} rc {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file of a folder with its size and mtime: a later phase must not change any of them."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_own_grayscale_pngs_end_to_end(tmp_path):
    data = write_gray_pngs(tmp_path / "data")
    exp = tmp_path / "runs" / "gray"
    cfg_path = tmp_path / "gray.yaml"
    cfg_path.write_text(f"""
name: gray
run_root: {tmp_path / 'runs'}
space: {{name: demo, resolution: 28, num_classes: 4}}
data: {{source: folder, root: {data}, resolution: 28, backend: torchvision, num_workers: 0}}
train: {{strategy: non_greedy, epochs: 1, max_steps: 3, layer_groups: single, log_every: 1, threads: 1}}
search: {{population: 4, generations: 1, parents: 2, mutations: 1, crossovers: 1, recal_batches: 1, batch_size: 8}}
retrain: {{epochs: 2, max_steps: 4, warmup_epochs: 0.2, augment: train, ema_decay: 0.9, log_every_steps: 1,
          checkpoint_every_steps: 100, eval_every_epochs: 1}}
""")
    ds_train = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())
    ds_train.update(train_micro_batch_size_per_gpu=8, csv_monitor={"enabled": False})
    ds_retrain = json.loads((REPO / "ds_configs" / "retrain_cpu.json").read_text())
    ds_retrain.update(train_micro_batch_size_per_gpu=16)
    for name, doc in (("ds_train.json", ds_train), ("ds_retrain.json", ds_retrain)):
        (tmp_path / name).write_text(json.dumps(doc))

    # every launcher on its defaults: the experiment directory decides where each phase writes
    t = _run("launchers/train.py", "--ds_config", str(tmp_path / "ds_train.json"), "--config", str(cfg_path))
    log = t.stdout + t.stderr
    # start-up names the pipeline: 12 train images per class, 2 held out (10%, rounded up) -> 40 to train on
    assert f"data: folder at {data}, backend torchvision, fit split 40 images in 4 classes" in log
    assert "28 px, train: pad 4 + random crop + flip, colour jitter 0" in log  # small images: CIFAR recipe
    assert "train: step 3/3 (100%)" in log and "ETA" in log and "\r" not in log  # piped: plain progress lines
    assert "held-out check (held-out split" in log and (exp / "supernet" / "heldout.json").is_file()
    sup = _snapshot(exp / "supernet")
    assert "supernet.pt" in sup
    s = _run("launchers/search.py", "--config", str(cfg_path), "--no-progress")
    assert "\r" not in s.stderr + s.stdout  # piped: no carriage-return progress lines
    srch = _snapshot(exp / "search")
    _run("launchers/retrain.py", "--ds_config", str(tmp_path / "ds_retrain.json"), "--config", str(cfg_path))
    _run("-m", "lwsl_ds.cli", "report", str(exp))

    # no phase wrote into another's folder
    assert sorted(p.name for p in exp.iterdir()) == ["report", "retrain", "search", "supernet"]
    assert _snapshot(exp / "supernet") == sup and _snapshot(exp / "search") == srch
    for phase in ("supernet", "search", "retrain", "report"):
        assert (exp / phase / ".lwsl_phase").read_text().strip() == phase
    assert not (exp / "supernet" / "best_arch.yaml").exists() and not (exp / "retrain" / "supernet.pt").exists()

    # the report's summary holds the best arch and the retrained top-1, each with its split
    import yaml

    best = yaml.safe_load((exp / "search" / "best_arch.yaml").read_text())
    final = json.loads((exp / "retrain" / "final.json").read_text())
    html = (exp / "report" / "report.html").read_text()
    summary = html[:html.index("</section>")]
    assert f"<td>best arch</td><td>{best['named']} ({best['arch']})</td>" in summary
    assert f"<td>retrained top-1</td><td>{100 * final['top1']:.2f}%" in summary and "val split, 24 images" in summary
    assert "held-out split" in best["score_split"] and best["score_split"] in summary

    # the export classifies files with its recorded preprocessing, as the retrained model does
    export = exp / "retrain" / "export"
    pre = json.loads((export / "preprocess.json").read_text())
    assert pre["class_names"] == sorted(CLASSES) and pre["crop"] == 28 and pre["channels"] == "RGB"
    from lwsl_ds.config import load_experiment
    from lwsl_ds.data import build_loader
    from lwsl_ds.predict import predict
    from lwsl_ds.space import build_subnet, load_arch, load_subnet_weights

    cfg = load_experiment(cfg_path)
    val = build_loader(cfg.data, "val", batch_size=24, augment="val")
    images, labels = next(iter(val))
    files = val.index.names[:24]
    space, arch, _ = load_arch(export / "arch.yaml")
    model = load_subnet_weights(export / "weights.pt", build_subnet(space, arch, num_outputs=4)).eval()
    with torch.no_grad():
        want = model(images).argmax(1).tolist()
    got = predict(export, files)
    assert [g["label"] for g in got] == want and all(g["class"] == pre["class_names"][g["label"]] for g in got)
    r = _run("-m", "lwsl_ds.cli", "predict", str(export), *files[:3])
    assert [line.split("\t")[1] for line in r.stdout.strip().splitlines()] == [g["class"] for g in got[:3]]
