"""train.channels_last: NHWC image batches through real DeepSpeed engines (ZeRO 1), the same first-step losses
as the default format up to float rounding, exact resume, and its refusals and fingerprint."""

from __future__ import annotations

import json

import pytest
import torch

from lwsl_ds.config import ConfigError, load_experiment
from lwsl_ds.config.fingerprint import check_resume, train_fingerprint
from lwsl_ds.strategies.loop import Trainer
from test_train_launcher import REPO, _run, _weights

_SHORT = ("train.max_steps=4", "train.log_every=1")


def _losses(run_dir) -> dict:
    first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1
    return {k: v for k, v in first.items() if k.startswith("loss/")}


@pytest.mark.slow
def test_channels_last_matches_default_losses_and_resumes_exactly(tmp_path):
    _run(tmp_path, "plain", *_SHORT)
    _run(tmp_path, "nhwc", *_SHORT, "train.channels_last=true")
    runs = tmp_path / "runs"
    plain, nhwc = _losses(runs / "plain" / "supernet"), _losses(runs / "nhwc" / "supernet")
    assert plain.keys() == nhwc.keys() and len(plain) >= 4
    for k in plain:  # the same weights and data: only the summation order of the convolutions differs
        assert nhwc[k] == pytest.approx(plain[k], rel=1e-4, abs=1e-5), k
    # killed right after step 3: resumes from the step-2 checkpoint and ends where the uninterrupted run did
    r = _run(tmp_path, "killed", *_SHORT, "train.channels_last=true", env={"LWSL_FAULT": "after_step@3"},
             expect=None)
    assert r.returncode == -9
    _run(tmp_path, "killed", *_SHORT, "train.channels_last=true", "--resume")
    a, b = _weights(runs / "nhwc" / "supernet" / "supernet.pt"), _weights(runs / "killed" / "supernet" / "supernet.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
        assert a[k].is_contiguous(), k  # weights stay in the default format (DeepSpeed's broadcast needs it)


def test_trainer_feeds_nhwc_batches_only_when_asked():
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    loader = [(x, y)] * 2
    for flag, want in ((True, torch.channels_last), (False, torch.contiguous_format)):
        t = Trainer(torch.nn.Identity(), None, None, loader, seed=0, total_steps=1, channels_last=flag)
        images, labels = t._batch(x, y)
        assert images.is_contiguous(memory_format=want) and torch.equal(images, x) and labels.dtype == torch.int64
    assert t._batch(x, y)[0] is x  # the default format leaves the batch alone: digests of old runs hold


def _cfg(*overrides: str):
    return load_experiment(REPO / "configs" / "train_demo.yaml", list(overrides))


def test_channels_last_is_refused_for_layer_parallel():
    with pytest.raises(ConfigError, match="train.channels_last: not implemented for train.parallel.mode=layer"):
        _cfg("train.channels_last=true", "train.parallel.mode=layer", "train.layer_groups=per_layer")


def test_fingerprint_holds_channels_last_only_when_set():
    ds = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())
    default, nhwc = train_fingerprint(_cfg(), ds, 1, "deepspeed"), train_fingerprint(_cfg("train.channels_last=true"),
                                                                                      ds, 1, "deepspeed")
    assert "train.channels_last" not in default  # checkpoints from before the key resume unchanged
    assert nhwc["train.channels_last"] is True
    with pytest.raises(ConfigError, match="train.channels_last: False in the checkpoint, True now"):
        check_resume(default, nhwc, "run", "start a new run")
    check_resume(default, train_fingerprint(_cfg("train.channels_last=false"), ds, 1, "deepspeed"), "run", "new")
