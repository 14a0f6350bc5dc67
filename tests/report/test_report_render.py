"""The run report is self-contained, shows missing phases as such, and renders in real headless Chromium."""

from __future__ import annotations

import json

import pytest

from lwsl_ds.report.build import build_report
from lwsl_ds.report.render import check_images, find_chromium


def _fake_run(tmp_path):
    run = tmp_path / "run"
    (run / "supernet").mkdir(parents=True)
    (run / "supernet" / "config.yaml").write_text("space: {name: demo}\ntrain: {strategy: non_greedy}\n")
    lines = [{"step": s, "loss/layer0": 2.3 - 0.1 * s, "acc/layer0": 0.1 + 0.02 * s} for s in range(1, 6)]
    (run / "supernet" / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return run


def test_report_marks_missing_phases_and_embeds_images(tmp_path):
    run = _fake_run(tmp_path)
    html, md = build_report(run)
    text = html.read_text()
    assert "data:image/png;base64," in text and "src='train_loss.png'" not in text
    assert "the search did not run" in text and "retraining did not run" in text
    assert "report_figures/train_loss.png" in md.read_text()


def test_report_renders_in_chromium_with_every_image_loaded(tmp_path):
    if find_chromium() is None:
        pytest.skip("Debian package 'chromium' is not installed (make test installs it when run as root)")
    run = _fake_run(tmp_path)
    html, _ = build_report(run, screenshot=True)
    ok, broken = check_images(html)
    assert ok == 2 and broken == []
    assert (run / "screenshot.png").stat().st_size > 10_000
    # a broken image is detected, so the check above can fail
    bad = html.with_name("broken.html")
    bad.write_text(html.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    ok2, broken2 = check_images(bad)
    assert ok2 == 1 and len(broken2) == 1
