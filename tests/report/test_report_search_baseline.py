"""The report's search section shows the FLOPs baseline (largest arch under the limits) beside the pick."""

from __future__ import annotations

import json

import yaml

from lwsl_ds.report.phases import search_section


def _search_section(exp):
    return search_section(exp / "search", exp)


def _run(tmp_path, base):
    s = tmp_path / "search"
    s.mkdir(parents=True)
    (s / "best_arch.yaml").write_text(yaml.safe_dump({"arch": "1200", "named": "a-b-c-d", "score": 0.5,
                                                      "flops": 3.0e6, "params": 1e5}))
    (s / "candidates.jsonl").write_text(json.dumps({"arch": "1200", "score": 0.5}) + "\n")
    if base is not None:
        (s / "baseline.json").write_text(json.dumps(base))
    return tmp_path


def test_search_section_names_the_baseline_and_whether_the_pick_changed(tmp_path):
    sec = _search_section(_run(tmp_path, {"arch": "2222", "flops": 4.4e6, "exact": True, "score": 0.41}))
    text = " ".join(sec.paragraphs)
    assert "largest arch under the limits" in text and "2222, 4.40M MACs" in text and "41.00% top-1" in text
    assert "changed the pick" in text


def test_search_section_same_arch_and_no_baseline(tmp_path):
    sec = _search_section(_run(tmp_path / "a", {"arch": "1200", "flops": 3.0e6, "exact": False, "score": 0.5}))
    assert "the same arch" in " ".join(sec.paragraphs) and "of those evaluated" in " ".join(sec.paragraphs)
    sec = _search_section(_run(tmp_path / "b", None))  # a search from before baseline.json: no line, no error
    assert len(sec.paragraphs) == 1
