"""Data defaults by resolution, the start-up description, one-line data errors in every launcher, and
progress that is a bar in a terminal and plain lines when piped."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lwsl_ds.common.progress import Progress
from lwsl_ds.config import from_dict
from lwsl_ds.config.sections.data import DataConfig
from lwsl_ds.data import DataError
from lwsl_ds.data.augment import make_spec

REPO = Path(__file__).resolve().parents[2]


def test_small_images_get_the_cifar_recipe_and_large_ones_the_imagenet_recipe():
    small = from_dict(DataConfig, {"source": "folder", "root": "x", "resolution": 28})
    assert (small.train_crop, small.train_jitter, small.crop_ratio) == ("pad_crop", 0.0, 1.0)
    spec = make_spec(small, "train")
    assert spec.crop == "pad_crop" and spec.jitter == 0.0 and make_spec(small, "val").resize_short == 28
    large = from_dict(DataConfig, {"source": "folder", "root": "x", "resolution": 224})
    assert (large.train_crop, large.train_jitter, large.crop_ratio) == ("random_resized", 0.4, 0.875)
    assert from_dict(DataConfig, {"source": "cifar10"}).train_crop == "pad_crop"
    mine = from_dict(DataConfig, {"source": "folder", "root": "x", "resolution": 28, "crop": "random_resized",
                                  "jitter": 0.2})
    assert (mine.train_crop, mine.train_jitter) == ("random_resized", 0.2)  # the config always wins
    text = small.describe()
    assert "pad 4 + random crop + flip" in text and "colour jitter 0" in text and "held-out split" in text


def test_piped_progress_prints_plain_lines_with_eta_and_no_carriage_returns():
    out = io.StringIO()
    bar = Progress(20, desc="retrain", tty=False, stream=out)
    for _ in range(20):
        bar.update(1, loss=1.5)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and 2 <= len(lines) <= 11
    assert lines[-1].startswith("retrain: step 20/20 (100%)") and "ETA 0:00:00" in lines[-1] and "loss 1.5" in lines[-1]
    quiet = io.StringIO()
    Progress(5, tty=False, stream=quiet, enabled=False).update(5)
    assert quiet.getvalue() == ""


def test_a_worker_wrapped_data_error_becomes_one_line():
    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1\nlwsl_ds.data.sources.DataError: /d/a.png: cannot decode image")
    assert wrapped.one_line() == "/d/a.png: cannot decode image"
    assert DataError("/d/train/cat: class folder holds no images").one_line().startswith("/d/train/cat")


def _launch(*cmd: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "LWSL_FAULT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_every_launcher_names_a_wrong_data_root_or_an_empty_class_in_one_line(tmp_path):
    from lwsl_ds.config import load_experiment
    from lwsl_ds.search.loading import build_supernet

    missing = tmp_path / "no_such_data"
    empty = tmp_path / "data"
    (empty / "train" / "cat").mkdir(parents=True)
    (empty / "val" / "cat").mkdir(parents=True)
    cfg = REPO / "configs" / "demo.yaml"
    base = ["--config", str(cfg), f"run_root={tmp_path / 'runs'}", "data.source=folder", "data.max_per_class=null"]
    sup = tmp_path / "runs" / "demo" / "supernet"
    sup.mkdir(parents=True)
    torch.save(build_supernet(load_experiment(cfg)).state_dict(), sup / "supernet.pt")
    from tests.retrain.helpers import write_arch

    arch = write_arch(tmp_path / "arch.yaml", "1020")
    runs = {
        "train": ["launchers/train.py", "--ds_config", str(REPO / "ds_configs" / "train_cpu.json"),
                  "--run_dir", str(tmp_path / "runs" / "t"), *base],
        "search": ["launchers/search.py", "--no-progress", *base],
        "retrain": ["launchers/retrain.py", "--ds_config", str(REPO / "ds_configs" / "retrain_cpu.json"),
                    "--arch", str(arch), *base],
    }
    for name, cmd in runs.items():
        for root, want in ((missing, f"data root '{missing}' does not exist"),
                           (empty, f"{empty / 'train' / 'cat'}: class folder holds no images")):
            if name != "search" and root is empty:
                continue  # the same index code; one launcher each for the empty folder keeps this test short
            r = _launch(*cmd, f"data.root={root}")
            err = r.stderr.strip().splitlines()
            assert r.returncode == 2 and err and err[-1].startswith("error: ") and want in err[-1], \
                f"{name}: rc {r.returncode}\n{r.stderr[-2000:]}"
            assert "Traceback" not in r.stderr, f"{name}\n{r.stderr[-2000:]}"


def test_data_stats_of_grayscale_images_gives_three_equal_channels(tmp_path, capsys):
    from lwsl_ds.data.stats import main
    from tests.experiment.test_own_data import write_gray_pngs

    data = write_gray_pngs(tmp_path / "data", train=3, val=1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{source: folder, root: {data}, resolution: 28}}\n")
    assert main(["--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    mean = eval(out.split("data.mean=")[1].splitlines()[0])
    std = eval(out.split("data.std=")[1].splitlines()[0])
    assert "# 12 train images" in out and len(set(mean)) == 1 and len(set(std)) == 1
    assert 0.2 < mean[0] < 0.8 and 0.05 < std[0] < 0.5
    assert main(["--config", str(cfg), "data.root=/no/such/dir"]) == 2
    assert "error: data root '/no/such/dir' does not exist" in capsys.readouterr().err
