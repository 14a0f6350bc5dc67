"""lwsl_ds.demo without running the launchers: the spos phase gets the non-greedy run's step time as its
budget, interrupted training phases resume, and --resume skips finished phases (only the report is built)."""

from __future__ import annotations

import json

import pytest

from lwsl_ds import demo


def _phase(run, word):
    return next(p for p in demo._phases(run) if word in p.name)


def test_spos_phase_gets_the_non_greedy_step_time_as_budget(tmp_path):
    run = tmp_path / "demo"
    (run / "supernet").mkdir(parents=True)
    spos = _phase(run, "spos")
    with pytest.raises(RuntimeError, match="no train_seconds"):
        spos.command()  # the non-greedy run has not logged its step time
    (run / "supernet" / "metrics.jsonl").write_text(json.dumps({"step": 20, "train_seconds": 30.0}) + "\n")
    cmd = spos.command()
    assert "train.strategy=spos" in cmd and "train.max_minutes=0.5" in cmd and "--resume" not in cmd
    assert f"train.epochs={demo._epochs() * demo.SPOS_EPOCH_FACTOR}" in cmd
    (run / "spos" / "checkpoints").mkdir(parents=True)  # interrupted: continue it, with its step time
    assert "--resume" in spos.command()
    ranks = [p.command() for p in demo._phases(run) if p.name.startswith("ranking")]
    assert [c[c.index("--title") + 1] for c in ranks] == ["non_greedy", "spos"]
    assert all(f"rank.truth={run / 'groundtruth' / 'truth.csv'}" in c for c in ranks)


def test_resume_skips_finished_phases(tmp_path, capsys):
    run = tmp_path / "demo"
    (run / ".done").mkdir(parents=True)
    for k in range(len(demo._phases(run))):
        (run / ".done" / f"phase{k}").write_text("1.0\n")
    assert demo.main(["--run-dir", str(run)]) == 2  # an existing run directory is refused without a flag
    assert "--resume" in capsys.readouterr().err
    assert demo.main(["--run-dir", str(run), "--resume", "--no-screenshot"]) == 0
    out = capsys.readouterr().out
    assert out.count("already done (--resume)") == len(demo._phases(run)) and (run / "report" / "report.html").is_file()
