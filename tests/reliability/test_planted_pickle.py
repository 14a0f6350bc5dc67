"""No checkpoint file can run code: a ``__reduce__`` payload planted in each file kind is refused, never run.

Each case copies the shared tiny run, replaces one file with a pickle whose loading would ``os.mkdir`` a
marker folder, re-writes the checkpoint's ``sha256.json`` (whoever can write one file can write the list, so
the weights-only load is what must stop it), runs the real launcher and asserts: exit code 2, one error line
naming the file, no traceback, no marker. A second case leaves ``sha256.json`` alone: the digest check
refuses the altered file before anything of the checkpoint is read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .helpers import LAUNCH, PY, plant, run, train_cmd


def _copy(trained: dict, tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    shutil.copytree(trained["root"], root)  # copy2 keeps mtimes: the final supernet.pt stays newer
    return root


def _refused(r, path: Path, marker: Path) -> None:
    assert not marker.exists(), f"the payload ran\n{r.stderr[-2000:]}"
    assert r.returncode == 2, f"rc {r.returncode}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0], r.stderr[-3000:]


TRAIN_FILES = {
    "engine": "engine0/step00000002/mp_rank_00_model_states.pt",
    "optimizer": "engine0/step00000002/zero_pp_rank_0_mp_rank_00_optim_states.pt",
    "rng": "rng_rank0.pt",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(TRAIN_FILES))
def test_train_resume_never_runs_a_planted_pickle(trained, tmp_path, kind):
    root = _copy(trained, tmp_path)
    target = root / "tiny" / "checkpoints" / trained["ckpt"].name / TRAIN_FILES[kind]
    assert target.is_file(), sorted(p.name for p in target.parent.iterdir())
    marker = tmp_path / "PWNED"
    plant(target, marker)
    r = run(train_cmd(trained["ds"], root, "tiny", "train.max_steps=4", "--resume"))
    _refused(r, target, marker)
    assert "weights-only" in r.stderr


@pytest.mark.slow
def test_train_resume_does_not_read_the_checkpoint_supernet(trained, tmp_path):
    """Training resumes from the engines' files; the checkpoint's supernet.pt (for search/rank) is never loaded.
    Stale temporary files of killed writers are gone after the start."""
    root = _copy(trained, tmp_path)
    target = root / "tiny" / "checkpoints" / trained["ckpt"].name / "supernet.pt"
    marker = tmp_path / "PWNED"
    plant(target, marker)
    stale = [root / "tiny" / "config.yaml.tmp", root / "tiny" / "checkpoints" / "step00000003.tmp"]
    stale[0].write_bytes(b"half")
    stale[1].mkdir()  # what writers killed mid-write leave behind
    r = run(train_cmd(trained["ds"], root, "tiny", "train.max_steps=3", "train.extend=replan", "--resume"))
    assert r.returncode == 0 and not marker.exists(), r.stderr[-3000:]
    assert not any(p.exists() for p in stale)


@pytest.mark.slow
def test_train_resume_refuses_a_file_that_does_not_match_its_digest(trained, tmp_path):
    root = _copy(trained, tmp_path)
    target = root / "tiny" / "checkpoints" / trained["ckpt"].name / TRAIN_FILES["engine"]
    marker = tmp_path / "PWNED"
    plant(target, marker, redigest=False)
    r = run(train_cmd(trained["ds"], root, "tiny", "train.max_steps=4", "--resume"))
    _refused(r, target, marker)
    assert "SHA-256 does not match" in r.stderr


def _search_cmd(run_dir: Path, out: Path) -> list[str]:
    return [PY, str(LAUNCH / "search.py"), "--config", str(run_dir / "config.yaml"), "--checkpoint", str(run_dir),
            "--no-progress", "--out", str(out), "search.population=4", "search.parents=2", "search.mutations=1", "search.crossovers=1", "search.generations=1",
            "search.recal_batches=1", "search.val_batches=1"]


def _rank_cmd(run_dir: Path, out: Path, truth: Path) -> list[str]:
    return [PY, str(LAUNCH / "rank.py"), "--config", str(run_dir / "config.yaml"), "--checkpoint", str(run_dir),
            "--no-progress", "--out", str(out), f"rank.truth={truth}", "rank.num_archs=4", "rank.top_k=[2]", "rank.bootstrap=0", "rank.shift=false",
            "search.recal_batches=1", "search.val_batches=1"]


@pytest.mark.parametrize("launcher", ["search", "rank"])
@pytest.mark.parametrize("where", ["final", "checkpoint"])
def test_search_and_rank_never_run_a_planted_supernet(trained, tmp_path, launcher, where):
    root = _copy(trained, tmp_path)
    run_dir = root / "tiny"
    target = run_dir / "supernet.pt" if where == "final" else run_dir / "checkpoints" / trained["ckpt"].name / \
        "supernet.pt"
    marker = tmp_path / "PWNED"
    plant(target, marker)
    if launcher == "search":
        cmd = _search_cmd(run_dir, tmp_path / "out")
    else:
        truth = tmp_path / "truth.csv"
        truth.write_text("arch,acc\n1230,0.1\n1111,0.2\n2222,0.3\n3333,0.4\n")
        cmd = _rank_cmd(run_dir, tmp_path / "out", truth)
    r = run(cmd)
    _refused(r, target, marker)


# ---- retraining: engine (model + optimizer states, ZeRO 1), model.pt, ema.pt, rank RNG -------------------
RETRAIN_FILES = {
    "engine": "ds/state/mp_rank_00_model_states.pt",
    "optimizer": "ds/state/zero_pp_rank_0_mp_rank_00_optim_states.pt",
    "ema": "ema.pt",
    "rng": "rank0.pt",
}


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, shared_data) -> dict:  # reads ../shared/data/cifar10-jpeg
    """A 2-step retraining run (ZeRO 1) with a checkpoint at step 2."""
    import json

    from tests.retrain.helpers import retrain_cmd, write_arch

    base = tmp_path_factory.mktemp("retrain")
    ds = json.loads((LAUNCH.parent / "ds_configs" / "retrain_cpu.json").read_text())
    ds.update(train_micro_batch_size_per_gpu=16, zero_optimization={"stage": 1})
    (base / "ds.json").write_text(json.dumps(ds))
    arch = write_arch(base / "arch.yaml")

    def cmd(steps: int, *extra: str) -> list[str]:
        c = retrain_cmd(arch, base / "run", f"retrain.max_steps={steps}", "retrain.checkpoint_every_steps=2",
                        "retrain.export=false", "data.max_per_class=4", extra=extra)
        c[c.index("--ds_config") + 1] = str(base / "ds.json")
        return c

    r = run(cmd(2))
    assert r.returncode == 0, r.stderr[-3000:]
    return {"base": base, "cmd": cmd}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(RETRAIN_FILES))
def test_retrain_resume_never_runs_a_planted_pickle(retrained, tmp_path, kind):
    run_dir = tmp_path / "run"
    shutil.copytree(retrained["base"] / "run", run_dir)
    target = run_dir / "checkpoints" / "step_00000002" / RETRAIN_FILES[kind]
    assert target.is_file(), sorted(str(p) for p in target.parent.rglob("*"))
    marker = tmp_path / "PWNED"
    plant(target, marker)
    cmd = retrained["cmd"](4, "--resume", "auto")
    cmd[cmd.index("--run_dir") + 1] = str(run_dir)
    r = run(cmd)
    _refused(r, target, marker)


@pytest.mark.slow
def test_retrain_resume_refuses_another_recipe(retrained, tmp_path):
    """The retraining fingerprint: a changed recipe value is named with both values, nothing is loaded."""
    run_dir = tmp_path / "run"
    shutil.copytree(retrained["base"] / "run", run_dir)
    cmd = retrained["cmd"](4, "--resume", "auto")
    cmd[cmd.index("--run_dir") + 1] = str(run_dir)
    cmd[cmd.index("--resume"):cmd.index("--resume")] = ["--set", "retrain.label_smoothing=0.2"]
    r = run(cmd)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "retrain.label_smoothing: 0.1 in the checkpoint, 0.2 now" in r.stderr, r.stderr[-3000:]
