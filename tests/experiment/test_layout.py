"""One experiment, one directory, one folder per phase: defaults, markers, and the refused collision."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lwsl_ds.config import ConfigError, load_experiment
from lwsl_ds.config.layout import MARKER, beside_supernet, check_folder, claim, detect_phase, phase_dir, phase_folders

REPO = Path(__file__).resolve().parents[2]


def _launcher(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_launcher", REPO / "launchers" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_phase_folders_default_under_the_experiment(tmp_path):
    cfg = load_experiment(REPO / "configs" / "demo.yaml", [f"run_root={tmp_path}", "name=exp"])
    assert phase_dir(cfg, "supernet") == tmp_path / "exp" / "supernet"
    assert phase_dir(cfg, "retrain") == tmp_path / "exp" / "retrain"
    sup = claim(phase_dir(cfg, "supernet"), "supernet")
    assert (sup / MARKER).read_text().strip() == "supernet"
    assert beside_supernet(sup, cfg, "search") == tmp_path / "exp" / "search"
    claim(tmp_path / "exp" / "rank" / "spos", "rank")
    assert [(p, f.relative_to(tmp_path / "exp").as_posix()) for p, f in phase_folders(tmp_path / "exp")] == \
        [("rank", "rank/spos"), ("supernet", "supernet")]


def test_a_folder_of_another_phase_is_refused_with_one_line(tmp_path):
    sup = claim(tmp_path / "exp" / "supernet", "supernet")
    with pytest.raises(ConfigError) as e:
        claim(sup, "retrain")
    msg = str(e.value)
    assert "\n" not in msg and str(sup) in msg and "super-net training outputs" in msg and "--run_dir" in msg
    # an older run without a marker is recognised by its files
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "checkpoints" / "latest").write_text("step00000002\n")
    assert detect_phase(old)[0] == "supernet"
    with pytest.raises(ConfigError, match="holds super-net training outputs"):
        check_folder(old, "retrain")
    # the experiment directory itself is not a phase folder
    with pytest.raises(ConfigError, match="is an experiment directory.*supernet/"):
        claim(tmp_path / "exp", "retrain")
    claim(sup, "supernet")  # its own folder is fine (resume)


def test_retrain_launcher_refuses_the_supernet_folder_and_defaults_to_its_own(tmp_path):
    from tests.retrain.helpers import write_arch

    launcher = _launcher("retrain")
    arch = write_arch(tmp_path / "arch.yaml")
    sup = claim(tmp_path / "exp" / "supernet", "supernet")
    (sup / "supernet.pt").write_bytes(b"")
    base = ["--config", str(REPO / "configs" / "demo.yaml"), "--ds_config", str(REPO / "ds_configs" / "retrain_cpu.json"),
            "--arch", str(arch), f"run_root={tmp_path}", "name=exp"]
    with pytest.raises(ConfigError, match=f"{sup}: holds super-net training outputs"):
        launcher.build_job(launcher.parse_args(base + ["--run_dir", str(sup)]))
    job = launcher.build_job(launcher.parse_args(base))
    assert job[4] == tmp_path / "exp" / "retrain" and detect_phase(job[4])[0] == "retrain"
    assert not (sup / "retrain_log.jsonl").exists() and detect_phase(sup)[0] == "supernet"


def test_search_launcher_refuses_an_output_folder_of_another_phase(tmp_path):
    retrain = claim(tmp_path / "exp" / "retrain", "retrain")
    sup = claim(tmp_path / "exp" / "supernet", "supernet")
    torch.save({}, sup / "supernet.pt")
    r = subprocess.run([sys.executable, str(REPO / "launchers" / "search.py"), "--config",
                        str(REPO / "configs" / "demo.yaml"), "--checkpoint", str(sup), "--out", str(retrain)],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert f"{retrain}: holds retraining outputs" in r.stderr and "--out" in r.stderr
