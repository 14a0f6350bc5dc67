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


def _fake_rank(run):
    """Two rank folders written by the real ranking writers, with the super-net runs they name."""
    from lwsl_ds.ranking.groundtruth import ARCHS_FILE, TRUTH_FILE
    from lwsl_ds.ranking.plots import heatmap_png
    from lwsl_ds.ranking.report import compare, write_report
    from lwsl_ds.ranking.truth import load_truth_file
    from lwsl_ds.space import all_archs, describe, load_space

    space = load_space("demo")
    archs = list(all_archs(space))[:6]
    gt = run / "groundtruth"
    gt.mkdir()
    (gt / TRUTH_FILE).write_text("arch,named,accuracy,flops\n" + "".join(
        f"{a.key},{describe(space, a)},{0.4 + 0.02 * i},{3e6 + 1e5 * i}\n" for i, a in enumerate(archs)))
    (gt / ARCHS_FILE).write_text("".join(f"{a.key}\n" for a in archs))
    (gt / "meta.json").write_text(json.dumps({"num_archs": 6, "steps": 60, "seed": 0, "epochs": 1.3,
                                              "space": "demo"}))
    truth = load_truth_file(gt / TRUTH_FILE, space)
    (run / "spos").mkdir()
    (run / "spos" / "config.yaml").write_text("train: {strategy: spos, max_minutes: 0.25}\n")
    for folder, secs, steps in (("supernet", 15.0, 40), ("spos", 15.2, 130)):
        with (run / folder / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"step": steps, "train_seconds": secs}) + "\n")
    for name, folder, sign in (("non_greedy", "supernet", 1), ("spos", "spos", -1)):
        out = run / "rank" / name
        rep = compare(archs, [sign * i + 0.1 * (i % 2) for i in range(6)], truth, top_k=[3], resamples=50,
                      meta={"checkpoint": str(run / folder)})
        write_report(rep, out, title=name)
        heatmap_png(out / "shift_heatmap.png", [[1, 0.5], [0.5, 1]], ["k3e3", "k5e3"])
        (out / "shift.json").write_text(json.dumps({"layer": 0, "off_diagonal_mean": 0.5, "num_images": 10,
                                                    "bn": "eval"}))


def test_report_marks_missing_phases_and_embeds_images(tmp_path):
    run = _fake_run(tmp_path)
    html, md = build_report(run)
    text = html.read_text()
    assert "data:image/png;base64," in text and "src='train_loss.png'" not in text
    assert "the search did not run" in text and "retraining did not run" in text
    assert "report_figures/train_loss.png" in md.read_text()
    assert "Ranking" in text and "launchers/rank.py writes ranking.json" in text


def test_report_shows_ranking_of_both_supernets_with_the_equal_time_budget(tmp_path):
    run = _fake_run(tmp_path)
    _fake_rank(run)
    html, md = build_report(run)
    text, mdt = html.read_text(), md.read_text()
    for doc in (text, mdt):
        assert "Kendall tau [CI]" in doc and "FLOPs floor tau" in doc
        assert "non_greedy 15.0 s (40 steps); spos 15.2 s (130 steps)" in doc
        assert "spos was stopped by a time budget of 15.0 s" in doc
        assert "each trained from scratch for 60 steps" in doc and "bootstrap interval of tau is wide" in doc
        assert "off-diagonal mean 0.500" in doc
    assert "rank/non_greedy/ranking_scatter.png" in mdt and "rank/spos/shift_heatmap.png" in mdt
    assert text.count("data:image/png;base64,") == 6  # 2 training curves, 2 scatters, 2 heatmaps
    assert "1.000 [" in text and "-1.000 [" in text  # tau of each super-net with its interval


def test_report_renders_in_chromium_with_every_image_loaded(tmp_path):
    if find_chromium() is None:
        pytest.skip("Debian package 'chromium' is not installed (make test installs it when run as root)")
    run = _fake_run(tmp_path)
    _fake_rank(run)
    html, _ = build_report(run, screenshot=True)
    ok, broken = check_images(html)
    assert ok == 6 and broken == []  # training curves, ranking scatters, shift heatmaps
    assert (run / "screenshot.png").stat().st_size > 10_000
    # a broken image is detected, so the check above can fail
    bad = html.with_name("broken.html")
    bad.write_text(html.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    ok2, broken2 = check_images(bad)
    assert ok2 == 5 and len(broken2) == 1


def test_memory_table_is_a_table_not_pipe_text(tmp_path):
    """The memory report's Markdown table becomes a real table in the HTML (it once showed as raw '|' lines)."""
    from lwsl_ds.ranking.plots import curves_png

    run = _fake_run(tmp_path)
    mem = run / "memory"
    mem.mkdir()
    curves_png(mem / "layers_greedy_b32.png", {"greedy": [(0, 1.0), (1, 2.0)]}, title="per-layer peak")
    (mem / "report.md").write_text(
        "# Memory report\n\n## batch 32\n\n| strategy | activations GiB | % spos |\n|---|---|---|\n"
        "| spos | 0.061 | 100.0% |\n| greedy | 0.035 | 57.2% |\n\n## batch 64\n\n| strategy | activations GiB | % spos |\n"
        "|---|---|---|\n| spos | 0.122 | 100.0% |\n")
    html, md = build_report(run)
    text = html.read_text()
    memory = text[text.index(">Memory</h2>"):text.index(">Search</h2>")]
    assert "<table" in memory and "<tr><td>greedy</td><td>0.035</td><td>57.2%</td></tr>" in memory
    assert "| spos |" not in memory and "0.122" not in memory  # first table only, no raw pipe lines
    assert "| greedy | 0.035 | 57.2% |" in md.read_text()
