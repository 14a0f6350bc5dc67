"""Evolutionary search: finds a known optimum faster than random search, respects limits, resumes, splits over ranks."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lwsl_ds.config import ConfigError
from lwsl_ds.config.sections.search import SearchConfig
from lwsl_ds.flops import build_cost_table
from lwsl_ds.search import STATE_FILE, InfeasibleConstraint, Search
from lwsl_ds.space import all_archs, load_space

WORKER = Path(__file__).with_name("search_worker.py")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(WORKER.parent))
from search_worker import CONFIG, TARGET, synthetic_score  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cost-table cache for the whole test session (tests/flops and tests/search share it)."""
    path = tmp_path_factory.getbasetemp() / "flops_cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def macro(cache):
    space = load_space("nasbench_macro")
    return space, build_cost_table(space, cache)


def _first_hit(history, value) -> int:
    """Evaluations needed to reach ``value`` (1-based); a large number when never reached."""
    return next((r["index"] + 1 for r in history if r["score"] == value), 10**9)


def test_evolution_needs_fewer_evaluations_than_random_to_find_the_optimum(macro):
    space, table = macro
    evo, rnd = [], []
    for seed in range(7):
        for alg, out in (("evolution", evo), ("random", rnd)):
            r = Search(space, table, SearchConfig(seed=seed, algorithm=alg)).run(synthetic_score)
            assert r.evaluations == 1000 and len({h["arch"] for h in r.history}) == 1000
            out.append(_first_hit(r.history, 0.0))
    assert max(evo) <= 1000, f"evolution missed the optimum {TARGET}: {evo}"
    assert statistics.median(evo) < statistics.median(rnd), (evo, rnd)


def test_constrained_optimum_found_and_limit_never_violated(macro):
    """Maximise params under a FLOPs cap: the optimum (known by enumeration) sits on the constraint."""
    space, table = macro
    arr = np.array([a.choices for a in all_archs(space)])
    cap = 40e6
    feasible = table.costs(arr) <= cap
    best = int(table.costs(arr, "params")[feasible].max())
    evo, rnd = [], []
    for seed in range(5):
        for alg, out in (("evolution", evo), ("random", rnd)):
            def score(a):
                assert table.cost(a).flops <= cap, f"evaluated a violating arch {a}"
                return float(table.cost(a).params)
            r = Search(space, table, SearchConfig(seed=seed, algorithm=alg, max_macs=cap)).run(score)
            out.append(_first_hit(r.history, float(best)))
    assert max(evo) <= 1000 and statistics.median(evo) < statistics.median(rnd), (evo, rnd)


def test_every_limit_holds_for_every_candidate(macro):
    space, table = macro
    cfg = SearchConfig(seed=1, population=30, generations=4, parents=5, mutations=12, crossovers=12,
                       min_macs=40e6, max_macs=60e6, max_params=1.5e6, cost_metric="conv_linear")

    def score(a):
        c = table.cost(a)
        assert 40e6 <= c.conv_linear <= 60e6 and c.params <= 1.5e6, a
        return float(c.conv_linear)
    r = Search(space, table, cfg).run(score)
    assert r.evaluations == 120
    assert {"mutation", "crossover", "random"} <= {h["origin"] for h in r.history}
    assert r.best["score"] == max(h["score"] for h in r.history)


def test_same_seed_same_search_other_seed_other_search(macro):
    space, table = macro
    cfg = SearchConfig(seed=5, population=10, generations=3, parents=3, mutations=4, crossovers=4)
    a = Search(space, table, cfg).run(synthetic_score).history
    b = Search(space, table, cfg).run(synthetic_score).history
    c = Search(space, table, SearchConfig(**{**cfg.__dict__, "seed": 6})).run(synthetic_score).history
    assert a == b and [h["arch"] for h in a] != [h["arch"] for h in c]


def test_infeasible_limit_is_reported_before_any_evaluation(macro, cache):
    space, table = macro

    def never(a):
        raise AssertionError("must not evaluate")
    with pytest.raises(InfeasibleConstraint, match=r"below the smallest.*Feasible: .*flops 7,897,600 \.\. "
                                                   r"107,770,368.*params 387,882"):
        Search(space, table, SearchConfig(max_macs=5e6)).run(never)
    with pytest.raises(InfeasibleConstraint, match="above the largest"):
        Search(space, table, SearchConfig(min_macs=2e8)).run(never)
    # each limit alone is feasible, together they are not (exact: the space is enumerated)
    with pytest.raises(InfeasibleConstraint, match="no single architecture"):
        Search(space, table, SearchConfig(min_macs=100e6, max_params=500e3)).run(never)
    # too large to enumerate: the bounded sampler reports it, still before any evaluation
    paper = load_space("paper")
    ptable = build_cost_table(paper, cache)
    lo, _ = ptable.bounds("flops")
    plo, _ = ptable.bounds("params")
    cfg = SearchConfig(min_macs=300e6, max_params=plo + 1000, max_tries=3)
    with pytest.raises(InfeasibleConstraint, match="nothing was evaluated"):
        Search(paper, ptable, cfg).run(never)
    with pytest.raises(ConfigError, match="min_macs"):
        SearchConfig(min_macs=5, max_macs=3).validate()


def test_tight_limit_terminates_and_reports_exhaustion(cache):
    """A window holding a few dozen archs of a 10^13 space: bounded retries, then a clean stop."""
    space = load_space("paper")
    table = build_cost_table(space, cache)
    lo, _ = table.bounds("flops")
    r = Search(space, table, SearchConfig(max_macs=lo + 3e6)).run(lambda a: float(sum(a)))
    assert r.exhausted and 0 < r.evaluations < 1000
    assert all(h["flops"] <= lo + 3e6 for h in r.history)


def test_small_space_is_exhausted_without_repeats(cache):
    space = load_space("demo")
    r = Search(space, build_cost_table(space, cache), SearchConfig()).run(lambda a: float(sum(a)))
    keys = [h["arch"] for h in r.history]
    assert r.exhausted and len(keys) == len(set(keys)) <= space.num_archs()
    assert r.best["arch"] == "3333"


def _worker(out: Path, cache: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, str(WORKER), str(out), str(cache), *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=e)


def test_killed_and_resumed_search_equals_uninterrupted(tmp_path, cache, macro):
    space, table = macro
    straight = Search(space, table, SearchConfig(**CONFIG)).run(synthetic_score)
    out = tmp_path / "run"
    p = _worker(out, cache, 47)  # SIGKILL in generation 3 (evaluations 41..60)
    assert p.returncode == -9, p.stderr
    saved = json.loads((out / STATE_FILE).read_text())
    assert saved["generation"] == 2 and len(saved["history"]) == 40
    p = _worker(out, cache)
    assert p.returncode == 0, p.stderr
    resumed = json.loads((out / "result.json").read_text())
    assert resumed["history"] == straight.history and resumed["best"] == straight.best
    # the resumed process scored only what was lost: generations 3..6
    assert len(json.loads((out / "scored_rank0.json").read_text())) == 80
    lines = (out / "candidates.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == straight.history


def test_resume_rejects_other_settings_and_allows_more_generations(tmp_path, macro):
    space, table = macro
    cfg = SearchConfig(**{**CONFIG, "generations": 2})
    Search(space, table, cfg, out_dir=tmp_path).run(synthetic_score)
    with pytest.raises(ConfigError, match=r"other settings.*config"):
        Search(space, table, SearchConfig(**{**CONFIG, "seed": 4}), out_dir=tmp_path).run(synthetic_score)
    longer = Search(space, table, SearchConfig(**CONFIG), out_dir=tmp_path).run(synthetic_score)
    assert longer.history == Search(space, table, SearchConfig(**CONFIG)).run(synthetic_score).history
    fresh = Search(space, table, cfg, out_dir=tmp_path, restart=True).run(synthetic_score)
    assert fresh.evaluations == 2 * CONFIG["population"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.multirank
def test_two_ranks_split_candidates_and_equal_one_rank(tmp_path, cache, macro):
    space, table = macro
    one = Search(space, table, SearchConfig(**CONFIG)).run(synthetic_score)
    out = tmp_path / "two"
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(out), str(cache)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(r), "WORLD_SIZE": "2",
                                   "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
             for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    two = json.loads((out / "result.json").read_text())
    assert two["history"] == one.history and two["best"] == one.best
    scored = [set(json.loads((out / f"scored_rank{r}.json").read_text())) for r in range(2)]
    assert scored[0] and scored[1] and not scored[0] & scored[1]
    assert scored[0] | scored[1] == {h["arch"] for h in one.history}


def test_states_saved_before_the_estimator_fields_still_resume(tmp_path, macro):
    """estimator / score_table / channels_last at their defaults are not in the fingerprint; other values are."""
    space, table = macro
    cfg = SearchConfig(**{**CONFIG, "generations": 1})
    s = Search(space, table, cfg, out_dir=tmp_path)
    s.run(synthetic_score)
    assert not {"estimator", "score_table", "channels_last"} & set(s.fingerprint["config"])  # as before they existed
    Search(space, table, SearchConfig(**{**CONFIG, "generations": 2}), out_dir=tmp_path).run(synthetic_score)
    with pytest.raises(ConfigError, match=r"other settings.*config"):
        Search(space, table, SearchConfig(**{**CONFIG, "generations": 2, "estimator": "local_acc"}),
               out_dir=tmp_path).run(synthetic_score)
