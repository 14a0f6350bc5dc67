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
    assert "search did not run" in text and "retraining did not run" in text
    assert html.parent == run / "report" and "figures/supernet_train_loss.png" in md.read_text()
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
    assert (run / "report" / "screenshot.png").stat().st_size > 10_000
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
    (mem / "report.json").write_text(json.dumps({"space": "demo", "resolution": 32, "results": {"32": {
        "spos": {"pct_of_spos": {"activations": 100.0}}, "greedy": {"pct_of_spos": {"activations": 57.2}}}}}))
    curves_png(mem / "layers_greedy_b32.png", {"greedy": [(0, 1.0), (1, 2.0)]}, title="per-layer peak")
    (mem / "report.md").write_text(
        "# Memory report\n\n## batch 32\n\n| strategy | activations GiB | % spos |\n|---|---|---|\n"
        "| spos | 0.061 | 100.0% |\n| greedy | 0.035 | 57.2% |\n\n## batch 64\n\n| strategy | activations GiB | % spos |\n"
        "|---|---|---|\n| spos | 0.122 | 100.0% |\n")
    html, md = build_report(run)
    text = html.read_text()
    start = text.index(">Memory: memory</h2>")
    memory = text[start:text.index("</section>", start)]
    assert "<table" in memory and "<tr><td>greedy</td><td>0.035</td><td>57.2%</td></tr>" in memory
    assert "| spos |" not in memory and "0.122" not in memory  # first table only, no raw pipe lines
    assert "| greedy | 0.035 | 57.2% |" in md.read_text()
    summary = text[:text.index("</section>")]  # the summary opens the report with the saving per strategy
    assert "<td>memory saving: greedy</td><td>activations 57.2% of spos (saves 42.8%)</td>" in summary


def test_report_of_an_experiment_with_only_search_and_retraining(tmp_path):
    """Any folder names, only some phases: the summary holds what ran, each number with its split, no raw dicts."""
    from lwsl_ds.config import ConfigError
    from lwsl_ds.config.layout import claim
    from lwsl_ds.space import load_space, parse_arch, save_arch

    exp = tmp_path / "mine"
    space = load_space("demo")
    save_arch(claim(exp / "my_search", "search") / "best_arch.yaml", space, parse_arch(space, "1020"), score=0.523,
              flops=3.1e6, params=51_000, score_split="held-out split (10% of train, 300 images)")
    ret = claim(exp / "final_model", "retrain")
    log = [{"event": "start", "arch": "1020", "named": "x", "total_steps": 40, "global_batch": 64, "lr": 0.01}]
    log += [{"event": "train", "step": s, "loss": 2.3 - 0.02 * s, "lr": 0.01 * (1 - s / 40), "samples": 1000,
             "world_size": 1, "img_per_s_rank": 500.0} for s in range(5, 45, 5)]
    log += [{"event": "eval", "step": 20, "top1": 0.31, "loss": 1.9, "samples": 1000}]
    (ret / "retrain_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (ret / "final.json").write_text(json.dumps({"event": "final", "step": 40, "top1": 0.461, "loss": 1.5,
                                                "samples": 1000, "ema": True, "split": "val"}))
    html, md = build_report(exp)
    text = html.read_text()
    summary = text[:text.index("</section>")]
    assert summary.index("Summary") < summary.index("best arch") and text.index("Summary") < text.index("Configuration")
    assert "<td>best arch</td><td>k3e3-skip-k5e3-skip (1020)</td>" in summary
    assert "<td>retrained top-1</td><td>46.10% (EMA weights, step 40)</td><td>val split, 1000 images" in summary
    assert "held-out split (10% of train, 300 images)" in summary and "3.10M" in summary
    assert "Super-net training</h2>" in text and "super-net training did not run" in text
    assert "{'" not in text and "{&#x27;" not in text  # no raw Python dicts
    assert text.count("data:image/png;base64,") == 1 and "figures/final_model_retrain.png" in md.read_text()
    with pytest.raises(ConfigError, match="is a retraining folder.*not an experiment directory"):
        build_report(ret)


def test_retrain_figure_has_one_quantity_per_labelled_axis(tmp_path):
    """loss, top-1 and lr get their own panels (samples=1000 once flattened loss and top-1 to a line at 0)."""
    from lwsl_ds.report.plots import Panel, panels_png
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    calls = []
    orig = plt.subplots

    def spy(*a, **k):
        fig, axes = orig(*a, **k)
        calls.append(axes)
        return fig, axes

    plt.subplots = spy
    try:
        png = panels_png(tmp_path / "p.png", [Panel("loss", "step", "cross-entropy", {"loss": [(1, 2.0), (2, 1.5)]}),
                                              Panel("top-1", "step", "top-1", {"top-1": [(2, 0.3)]}),
                                              Panel("lr", "step", "learning rate", {"lr": []})])
    finally:
        plt.subplots = orig
    assert png.is_file() and calls[0].shape == (1, 2)  # the empty lr panel is left out
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in calls[0][0]]
    assert labels == [("step", "cross-entropy"), ("step", "top-1")]
