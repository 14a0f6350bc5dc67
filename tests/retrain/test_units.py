"""Fast checks of the retraining pieces: lr rule and schedule, EMA, checkpoint discovery, config errors."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from lwsl_ds.config.schema import ConfigError, from_dict
from lwsl_ds.config.sections.retrain import RetrainConfig
from lwsl_ds.common.checkpoint import RETRAIN, find_latest
from lwsl_ds.retrain import checkpoint as ckpt_io
from lwsl_ds.retrain.ema import ModelEma
from lwsl_ds.retrain.recipe import WarmupCosine, build_optimizer, param_groups, scaled_lr
from lwsl_ds.retrain.job import prepare_ds_config
from lwsl_ds.retrain.step import average_buffers

from .helpers import REPO, write_arch


def test_lr_scales_linearly_with_global_batch():
    cfg = RetrainConfig()
    assert scaled_lr(cfg, 256) == pytest.approx(0.045)
    assert scaled_lr(cfg, 1024) == pytest.approx(0.18)
    assert scaled_lr(cfg, 64) == pytest.approx(0.01125)


def test_warmup_then_cosine():
    f = WarmupCosine(total=100, warmup=10, min_ratio=0.0)
    ramp = [f(s) for s in range(10)]
    assert all(a < b for a, b in zip(ramp, ramp[1:])) and ramp[-1] < 1.0
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5)
    assert f(100) == pytest.approx(0.0, abs=1e-12) and f(500) == pytest.approx(0.0, abs=1e-12)
    assert WarmupCosine(100, 0, 0.1)(100) == pytest.approx(0.1)


def test_rmsprop_recipe_and_no_decay_on_bn_and_bias():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    decay, no_decay = param_groups(model, 4e-5)
    assert {p.ndim for p in decay["params"]} == {2, 4} and {p.ndim for p in no_decay["params"]} == {1}
    assert no_decay["weight_decay"] == 0.0
    opt = build_optimizer(RetrainConfig(), model, lr=0.045)
    assert isinstance(opt, torch.optim.RMSprop)
    d = opt.param_groups[0]
    assert (d["alpha"], d["momentum"], d["eps"], d["weight_decay"]) == (0.9, 0.9, 1e-3, 4e-5)


def test_ema_warms_up_and_averages_bn_statistics():
    model = torch.nn.BatchNorm1d(2)
    ema = ModelEma(model, decay=0.9999)
    assert ema.decay_at(1) == pytest.approx(2 / 11) and ema.decay_at(10**6) == 0.9999
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(1.0)
    ema.update(model, step=1)
    d = 2 / 11
    assert torch.allclose(ema.shadow["weight"], torch.full((2,), d * 1 + (1 - d) * 3))
    assert torch.allclose(ema.shadow["running_mean"], torch.full((2,), (1 - d) * 1.0))
    target = ema.copy_to(torch.nn.BatchNorm1d(2))
    assert torch.equal(target.running_mean, ema.shadow["running_mean"])


def test_average_buffers_is_a_no_op_for_one_process():
    bn = torch.nn.BatchNorm1d(3)
    bn.running_mean.fill_(2.0)
    average_buffers(bn)
    assert torch.equal(bn.running_mean, torch.full((3,), 2.0))


def _fake_ckpt(root, step, complete=True):
    d = ckpt_io.checkpoint_dir(root) / f"step_{step:08d}"
    d.mkdir(parents=True)
    if complete:
        (d / "meta.json").write_text(json.dumps({"step": step}))
    return d


def test_latest_checkpoint_ignores_half_written_ones(tmp_path):
    assert find_latest(tmp_path, verify=False, layout=RETRAIN) is None
    _fake_ckpt(tmp_path, 20)
    good = _fake_ckpt(tmp_path, 100)
    _fake_ckpt(tmp_path, 300, complete=False)  # killed before meta.json: not complete
    (ckpt_io.checkpoint_dir(tmp_path) / ".tmp-step_00000400").mkdir()  # killed before the rename
    assert find_latest(tmp_path, verify=False, layout=RETRAIN) == (good, {"step": 100})
    assert [p.name for p in ckpt_io.list_checkpoints(tmp_path)] == ["step_00000020", "step_00000100"]
    with pytest.raises(ckpt_io.CheckpointError, match="no meta.json"):
        ckpt_io.read_meta(ckpt_io.checkpoint_dir(tmp_path) / "step_00000300")


@pytest.mark.parametrize("patch, message", [
    ({"optimizer": {"type": "Adam", "params": {"lr": 0.1}}}, "'optimizer' is not used for retraining"),
    ({"bf16": {"enabled": True}}, "torch_autocast"),
    ({"zero_optimization": {"stage": 3}}, "stage 3"),
    ({"train_batch_size": 100}, "do not multiply out"),
    ({"gradiant_clipping": 1.0}, "did you mean 'gradient_clipping'"),
])
def test_bad_retrain_ds_config_is_named(patch, message):
    raw = json.loads((REPO / "ds_configs" / "retrain_cpu.json").read_text())
    raw.update(patch)
    with pytest.raises(ConfigError, match=message) as e:
        prepare_ds_config(raw, world_size=2, where="ds_configs/x.json")
    assert "ds_configs/x.json" in str(e.value)


def test_shipped_configs_validate_and_state_the_recipe():
    from lwsl_ds.config.loader import load_experiment

    exp = load_experiment(REPO / "configs" / "retrain_imagenet.yaml")
    r = exp.retrain
    assert (r.optimizer, r.rmsprop_decay, r.momentum, r.dropout, r.weight_decay, r.lr_per_reference,
            r.warmup_epochs, r.epochs, r.augment) == ("rmsprop", 0.9, 0.9, 0.2, 4e-5, 0.045, 4, 500, "autoaugment")
    assert r.label_smoothing > 0 and r.ema_decay is not None and r.eval_with_ema
    ds = json.loads((REPO / "ds_configs" / "retrain_imagenet.json").read_text())
    cfg = prepare_ds_config(ds, world_size=4, where="retrain_imagenet.json")
    assert cfg["train_batch_size"] == 256 and cfg["torch_autocast"]["dtype"] == "bfloat16"
    assert load_experiment(REPO / "configs" / "retrain_cifar10.yaml").data.source == "cifar10"
    prepare_ds_config(json.loads((REPO / "ds_configs" / "retrain_cpu.json").read_text()), 1, "retrain_cpu.json")


def test_retrain_section_cross_checks():
    with pytest.raises(ConfigError, match="warmup_epochs"):
        from_dict(RetrainConfig, {"epochs": 3, "warmup_epochs": 4})
    with pytest.raises(ConfigError, match="eval_with_ema"):
        from_dict(RetrainConfig, {"ema_decay": None})
    with pytest.raises(ConfigError, match="optimizer"):
        from_dict(RetrainConfig, {"optimizer": "rmsprob"})


def test_launcher_refuses_to_overwrite_a_run_and_checks_resolution(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("retrain_launcher", REPO / "launchers" / "retrain.py")
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    arch = write_arch(tmp_path / "arch.yaml")
    run = tmp_path / "run"
    _fake_ckpt(run, 5)
    base = ["--config", str(REPO / "configs" / "retrain_cifar10.yaml"), "--ds_config",
            str(REPO / "ds_configs" / "retrain_cpu.json"), "--arch", str(arch), "--run_dir", str(run)]
    with pytest.raises(ConfigError, match="already holds checkpoints.*--resume auto"):
        launcher.build_job(launcher.parse_args(base))
    assert launcher.build_job(launcher.parse_args(base + ["--resume", "auto"])).resume == "auto"
    with pytest.raises(ConfigError, match="data resolution 64 differs from the resolution 32"):
        launcher.build_job(launcher.parse_args(base + ["--restart", "--set", "data.resolution=64"]))
    with pytest.raises(ConfigError, match="no architecture"):
        launcher.build_job(launcher.parse_args(base[:4] + ["--run_dir", str(tmp_path / "new")]))
    assert isinstance(launcher.parse_args(base + ["--local_rank=1"]), argparse.Namespace)


def test_retraining_checkpoints_are_published_under_their_own_names_and_verified(tmp_path):
    from lwsl_ds.common.checkpoint import publish
    from lwsl_ds.common.seeding import capture_rng_state

    for step in (2, 4, 6):
        publish(tmp_path, {"step": step}, capture_rng_state(), lambda tmp, tag: (tmp / "ds").mkdir(),
                lambda tmp: torch.save({"w": torch.ones(1)}, tmp / "model.pt"), keep=2, layout=RETRAIN)
    root = ckpt_io.checkpoint_dir(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000004", "step_00000006"]
    assert sorted(p.name for p in (root / "step_00000006").iterdir()) == ["ds", "meta.json", "model.pt", "rank0.pt",
                                                                          "sha256.json"]
    d, meta = find_latest(tmp_path, layout=RETRAIN)
    assert d.name == "step_00000006" and meta == {"step": 6, "tag": "step_00000006"}
    assert find_latest(tmp_path) is None  # the super-net's layout (step<N>/manifest.json) does not see them
    (d / "model.pt").write_bytes(b"altered")
    with pytest.raises(ckpt_io.CheckpointError, match="model.pt: SHA-256 does not match"):
        find_latest(tmp_path, layout=RETRAIN)


def test_one_seed_rule_for_both_phases():
    from lwsl_ds.common.seeding import rank_seed, run_seed

    # The super-net's rule (its launcher-test digests depend on it); retraining with the shipped seed 0 is
    # unchanged by it. Per-rank streams (dropout) differ per rank.
    assert run_seed(0, 3) == 3 and run_seed(2, 5) == 2005
    assert len({rank_seed(run_seed(0, 0), r) for r in range(8)}) == 8
