"""The hardening pieces on their own: safe YAML, run names, ds_config values, digests, fingerprints, errors."""

from __future__ import annotations

import copy
import errno
import json
import time

import pytest
import torch

from lwsl_ds.common.errors import CheckpointError, DiskFullError
from lwsl_ds.config.fingerprint import check_resume, flatten
from lwsl_ds.common.safe_io import (load_tensor_file, remove_stale, save_tensor_file, verify_digests,
                                    write_digests)
from lwsl_ds.config import ConfigError
from lwsl_ds.config.ds_config import validate_ds_config
from lwsl_ds.config.loader import load_experiment, load_yaml, parse_experiment

from .helpers import REPO, Payload

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def test_alias_bomb_is_refused_at_once_naming_the_line(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text("space:\n  name: demo\n" + "".join("  " + line + "\n" for line in BOMB.splitlines()))
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"bomb.yaml: line 3: YAML anchors and aliases") as e:
        load_yaml(f)
    assert time.monotonic() - t0 < 1 and len(str(e.value)) < 300


def test_duplicate_key_names_the_key_and_both_lines(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text("name: a\nseed: 1\ntrain:\n  epochs: 2\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: key 'epochs' is given twice \(lines 4 and 5\)"):
        load_yaml(f)


def test_non_utf8_bytes_name_the_file_and_offset(tmp_path):
    f = tmp_path / "latin.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin.yaml: not UTF-8 text \(byte 0xe9 at offset 9, line 1\)"):
        load_experiment(f)


def test_alias_in_an_override_is_refused():
    with pytest.raises(ConfigError, match="anchors and aliases"):
        parse_experiment({}, ["train.group_overrides={0: &a {x: 1}, 1: *a}"])


def test_huge_values_are_cut_in_messages():
    with pytest.raises(ConfigError) as e:
        parse_experiment({"seed": list(range(10**5))})
    assert len(str(e.value)) < 200


@pytest.mark.parametrize("name", ["", "..", "../../x", "a/b", "a\\b", ".hidden", "-x", "x" * 200, "a\0b"])
def test_run_names_that_leave_run_root_are_refused(name):
    with pytest.raises(ConfigError, match=r"name: "):
        parse_experiment({"name": name})


def test_plain_run_names_pass():
    for name in ("supernet", "spos", "run-1.2_b", "lr=0.1@x"):
        assert parse_experiment({"name": name}).name == name


DS = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())


@pytest.mark.parametrize("section,key,value,match", [
    ("optimizer", "lr", "0.01", "optimizer.params.lr: expected a finite number"),
    ("optimizer", "lr", -0.1, r"optimizer.params.lr: -0.1 is out of range"),
    ("optimizer", "lr", float("nan"), "optimizer.params.lr: expected a finite number"),
    ("optimizer", "lr", float("inf"), "optimizer.params.lr: expected a finite number"),
    ("optimizer", "lr", 1e30, r"optimizer.params.lr: 1e\+30 is out of range"),
    ("optimizer", "betas", [0.9, 1.2], r"optimizer.params.betas\[1\]: 1.2 is out of range"),
    ("optimizer", "betas", 0.9, "optimizer.params.betas: expected two numbers"),
    ("optimizer", "eps", 0, "optimizer.params.eps: 0 is out of range"),
    ("optimizer", "weight_decay", -1, "optimizer.params.weight_decay: -1 is out of range"),
    ("scheduler", "warmup_num_steps", -3, "scheduler.params.warmup_num_steps: expected an integer >= 0"),
    ("scheduler", "min_ratio", 2.0, "scheduler.params.min_ratio: 2.0 is out of range"),
    ("scheduler", "total_num_steps", "many", r"scheduler.params.total_num_steps: expected an integer >= 0 or"),
])
def test_ds_config_optimizer_and_scheduler_values(section, key, value, match):
    ds = copy.deepcopy(DS)
    ds[section]["params"][key] = value
    with pytest.raises(ConfigError, match="x.json: " + match):
        validate_ds_config(ds, 1, where="x.json")


def test_digests_name_the_altered_missing_or_added_file(tmp_path):
    d = tmp_path / "ck"
    (d / "sub").mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, d / "sub" / "a.pt")
    (d / "manifest.json").write_text("{}")
    write_digests(d)
    verify_digests(d)
    torch.save({"w": torch.zeros(2)}, d / "sub" / "a.pt")
    with pytest.raises(CheckpointError, match=r"sub/a.pt: SHA-256 does not match"):
        verify_digests(d)
    write_digests(d)
    torch.save({}, d / "b.pt")
    with pytest.raises(CheckpointError, match=r"b.pt: not listed in"):
        verify_digests(d)
    (d / "b.pt").unlink()
    (d / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"manifest.json: listed in sha256.json but missing"):
        verify_digests(d)
    (d / "sha256.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"sha256.json: corrupt digest list"):
        verify_digests(d)


def test_load_tensor_file_refuses_payloads_and_names_truncated_files(tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({"x": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil.pt: refused to load"):
        load_tensor_file(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save({"x": torch.ones(100)}, tmp_path / "ok.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "ok.pt").read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"cut.pt: cannot read \(truncated or corrupt"):
        load_tensor_file(tmp_path / "cut.pt")


def test_disk_full_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("LWSL_FAULT", "enospc")
    with pytest.raises(DiskFullError) as e:
        save_tensor_file({"x": torch.ones(1)}, tmp_path / "x.pt")
    assert e.value.errno == errno.ENOSPC and str(tmp_path / "x.pt") in str(e.value)


def test_stale_temporary_files_are_removed(tmp_path):
    (tmp_path / "search_state.json.123.tmp").write_text("{")
    (tmp_path / "step00000004.tmp").mkdir()
    (tmp_path / "keep.json").write_text("{}")
    gone = remove_stale(tmp_path, ["*.tmp"])
    assert sorted(p.name for p in gone) == ["search_state.json.123.tmp", "step00000004.tmp"]
    assert (tmp_path / "keep.json").exists()


def test_fingerprint_difference_lists_keys_both_values_and_the_way_out():
    saved = flatten({"space": {"resolution": 16}, "train": {"strategy": "greedy", "log_every": 1}})
    now = flatten({"space": {"resolution": 32}, "train": {"strategy": "greedy", "log_every": 5}})
    with pytest.raises(ConfigError, match=r"m.json: --resume refused.*space.resolution: 16 in the checkpoint, 32 now"
                                          r".*another name="):
        check_resume(saved, now, "m.json", "start a new run with another name=")
    check_resume(flatten({"train": {"log_every": 1}}), flatten({"train": {"log_every": 9}}), "m.json", "")


def test_debug_flag_and_env_show_the_traceback_still_exit_2(tmp_path):
    from .helpers import LAUNCH, PY, run

    cmd = [PY, str(LAUNCH / "train.py"), "--ds_config", str(REPO / "ds_configs/train_cpu.json"), "--config",
           str(REPO / "configs/train_demo.yaml"), f"run_root={tmp_path}", "name=../x"]
    plain, debug, env_debug = run(cmd), run(cmd + ["--debug"]), run(cmd, LWSL_DEBUG="1")
    for r in (plain, debug, env_debug):
        assert r.returncode == 2 and r.stderr.rstrip().splitlines()[-1].startswith("error: "), r.stderr
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr and "Traceback" in env_debug.stderr


def test_layer_parallel_rank_file_is_checked_against_its_marker(tmp_path):
    """A layer-parallel rank file is loaded only if it matches the SHA-256 its ``.done`` marker recorded."""
    import json

    from lwsl_ds.common.errors import CheckpointError
    from lwsl_ds.common.safe_io import check_file_sha256, file_sha256

    f, marker = tmp_path / "rank0.pt", tmp_path / "rank0.done"
    f.write_bytes(b"weights")
    marker.write_text(json.dumps({"step": 3, "sha256": file_sha256(f)}))
    check_file_sha256(f, marker)  # intact: no error
    f.write_bytes(b"altered")
    with pytest.raises(CheckpointError, match="rank0.pt: does not match"):
        check_file_sha256(f, marker)
    marker.write_text("3")  # a marker of an older version: no digest, refused
    with pytest.raises(CheckpointError, match="rank0.done: missing or without the sha256"):
        check_file_sha256(f, marker)
