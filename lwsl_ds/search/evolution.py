"""Evolutionary search (as in single-path one-shot NAS) and a random-search baseline, resumable and distributed.

Per generation: propose candidates (generation 0: random; later: mutations and crossovers of the top
``parents`` archs evaluated so far, topped up with random archs), score them on all ranks, append to the
history, write the state. Budget: ``population x generations`` evaluations; no arch is evaluated twice
and no arch that violates the constraints is ever proposed, evaluated or returned.

Example::

    table = build_cost_table(space)
    search = Search(space, table, SearchConfig(max_macs=330e6), out_dir="runs/x/search")
    result = search.run(evaluator.score)       # any Arch -> float, higher is better
    print(result.best["arch"], result.best["score"])
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..common.atomic import write_atomic
from ..common.dist import group_rank, group_size
from ..config.schema import ConfigError
from ..config.sections.search import SearchConfig
from ..flops.table import CostTable, space_fingerprint
from ..space.arch import Arch, describe, parse_arch
from ..space.spec import SearchSpace
from .constraints import Constraints, InfeasibleConstraint
from .distributed import broadcast_object, score_distributed
from .sampler import CandidateSampler
from .state import read_state, rng_from_json, rng_to_json, save_state

__all__ = ["Search", "SearchResult", "constraints_from_config", "STATE_FILE", "LOG_FILE"]

STATE_FILE = "search_state.json"
LOG_FILE = "candidates.jsonl"
STATE_VERSION = 1
# Fields that may change between a run and its resume (they do not change what was already scored).
_RESUMABLE_FIELDS = ("generations", "out_dir", "cache_dir")
# Fields added after search states were first saved: left out of the fingerprint at their defaults, so a
# search saved before they existed still resumes (the scores it saw are the ones these defaults give).
_LATER_DEFAULTS = {"estimator": "top1", "score_table": None, "channels_last": False}


def constraints_from_config(cfg: SearchConfig) -> Constraints:
    """The limits of a search config."""
    return Constraints(cfg.max_macs, cfg.min_macs, cfg.max_params, cfg.cost_metric)


@dataclass
class SearchResult:
    """Outcome of a search: the best record, every evaluated record in order, and why it stopped."""

    best: dict[str, Any]
    history: list[dict[str, Any]]
    generations: int
    exhausted: bool = False
    top: list[dict[str, Any]] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        """Number of evaluated candidates."""
        return len(self.history)


def _rank_key(rec: dict[str, Any]) -> tuple[float, int]:
    s = rec["score"]
    return (-(s if s == s else -math.inf), rec["index"])  # NaN scores sort last; ties: first evaluated wins


class Search:
    """One evolutionary (or random) search over ``space`` under ``constraints``, optionally saved in ``out_dir``."""

    def __init__(self, space: SearchSpace, table: CostTable, cfg: SearchConfig, *,
                 out_dir: str | Path | None = None, constraints: Constraints | None = None,
                 extra_fingerprint: dict[str, Any] | None = None, restart: bool = False) -> None:
        cfg.validate()
        if table.space is not space and space_fingerprint(table.space) != space_fingerprint(space):
            raise ValueError(f"cost table is for space {table.space.name!r} at {table.space.resolution} px, "
                             f"not {space.name!r} at {space.resolution} px")
        self.space, self.table, self.cfg = space, table, cfg
        self.constraints = constraints or constraints_from_config(cfg)
        # Before anything is evaluated: an infeasible limit is a config error with the feasible range.
        self.constraints.check(table)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.restart = restart
        self.fingerprint = {
            "space": space_fingerprint(space), "constraints": asdict(self.constraints),
            "config": {k: v for k, v in asdict(cfg).items()
                       if k not in _RESUMABLE_FIELDS and _LATER_DEFAULTS.get(k, object()) != v},
            **({"extra": extra_fingerprint} if extra_fingerprint else {})}
        self.rng = random.Random(cfg.seed)
        self.history: list[dict[str, Any]] = []
        self.generation = 0
        self.exhausted = False
        self._resumed: bool | None = None
        self.sampler = CandidateSampler(table, self.constraints, self.rng, cfg.max_tries)

    # ---- state -------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path | None:
        """Where the state is written after every generation (None: not saved)."""
        return self.out_dir / STATE_FILE if self.out_dir is not None else None

    def _state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "fingerprint": self.fingerprint, "generation": self.generation,
                "exhausted": self.exhausted, "rng": rng_to_json(self.rng.getstate()), "history": self.history}

    def _restore(self, doc: dict[str, Any]) -> None:
        if doc.get("version") != STATE_VERSION:
            raise ConfigError(f"{self.state_path}: search state version {doc.get('version')} is not "
                              f"{STATE_VERSION}; delete it or pass restart")
        if doc["fingerprint"] != json.loads(json.dumps(self.fingerprint)):
            diff = [k for k in set(doc["fingerprint"]) | set(self.fingerprint)
                    if doc["fingerprint"].get(k) != json.loads(json.dumps(self.fingerprint.get(k)))]
            raise ConfigError(f"{self.state_path}: saved search was run with other settings (differs in "
                              f"{sorted(diff)}); resume with the same config, or restart (only "
                              f"{list(_RESUMABLE_FIELDS)} may change)")
        self.generation = int(doc["generation"])
        self.exhausted = bool(doc["exhausted"])
        self.history = list(doc["history"])
        self.rng.setstate(rng_from_json(doc["rng"]))

    def _save(self) -> None:
        if self.out_dir is None or group_rank() != 0:
            return
        save_state(self.state_path, self._state())
        # The JSON-lines log is rewritten from the history, so a resumed run never duplicates lines.
        write_atomic(self.out_dir / LOG_FILE, "".join(json.dumps(r) + "\n" for r in self.history))

    def resume(self) -> bool:
        """Load the saved state once (rank 0 reads, every rank gets it); True when one was found.

        Call it before loading heavy things to learn whether anything is left to do (:attr:`done`).
        """
        if self._resumed is not None:
            return self._resumed
        doc = None
        if self.state_path is not None and not self.restart and group_rank() == 0:
            doc = read_state(self.state_path)
        doc = broadcast_object(doc)
        if doc is not None:
            self._restore(doc)
        self._resumed = doc is not None
        return self._resumed

    @property
    def done(self) -> bool:
        """True when every generation ran or the space is exhausted (nothing left to evaluate)."""
        return self.generation >= self.cfg.generations or self.exhausted

    # ---- proposals ---------------------------------------------------------------------------------
    def parents(self) -> list[Arch]:
        """The top ``cfg.parents`` archs evaluated so far (best first)."""
        top = sorted(self.history, key=_rank_key)[: self.cfg.parents]
        return [parse_arch(self.space, r["arch"]) for r in top]

    def _propose(self) -> tuple[list[Arch], list[str]]:
        seen = {r["arch"] for r in self.history}
        cfg = self.cfg
        cands: list[Arch] = []
        origins: list[str] = []
        if cfg.algorithm == "evolution" and self.generation > 0:
            parents = self.parents()
            for origin, got in (("mutation", self.sampler.mutations(parents, cfg.mutations, cfg.mutation_prob, seen)),
                                ("crossover", self.sampler.crossovers(parents, cfg.crossovers, seen))):
                cands += got
                origins += [origin] * len(got)
        fill = self.sampler.random_archs(cfg.population - len(cands), seen)
        return cands + fill, origins + ["random"] * len(fill)

    # ---- the loop ----------------------------------------------------------------------------------
    def run(self, score: Callable[[Arch], float], *, progress: bool = False,
            on_generation: Optional[Callable[["Search", list[dict[str, Any]]], None]] = None) -> SearchResult:
        """Run (or resume) until ``cfg.generations`` generations are done; every rank must call this.

        ``score(arch)`` is higher-is-better; each rank scores its share of every generation.
        ``on_generation(search, new_records)`` runs on every rank after each generation's state is written.
        """
        self.resume()
        while self.generation < self.cfg.generations and not self.exhausted:
            cands, origins = self._propose()
            # Rank 0's proposal (and RNG) is the one every rank uses, so ranks cannot drift apart.
            cands, origins, rng_state = broadcast_object((cands, origins, self.rng.getstate()))
            self.rng.setstate(rng_state)
            if not cands:
                if self.generation == 0:
                    raise InfeasibleConstraint(
                        f"no architecture meeting {self.constraints.describe()} was found in "
                        f"{self.cfg.population * self.cfg.max_tries} uniform and as many guided draws; nothing "
                        f"was evaluated. Feasible: {self.constraints.feasible_range(self.table)}")
                self.exhausted = True  # every feasible arch the sampler can reach was already evaluated
                self._save()
                break
            scores = self._score(cands, score, progress)
            new = []
            for arch, origin, s in zip(cands, origins, scores):
                c = self.table.cost(arch)
                new.append({"index": len(self.history), "generation": self.generation, "arch": arch.key,
                            "named": describe(self.space, arch), "score": s, "flops": c.flops,
                            "conv_linear": c.conv_linear, "params": c.params, "origin": origin})
                self.history.append(new[-1])
            self.generation += 1
            self._save()
            if on_generation is not None:
                on_generation(self, new)
        return self.result()

    def _score(self, cands: list[Arch], score: Callable[[Arch], float], progress: bool) -> list[float]:
        rank, world = group_rank(), group_size()
        bar = None
        if progress and rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=len(range(rank, len(cands), world)), leave=False, dynamic_ncols=True,
                       desc=f"generation {self.generation + 1}/{self.cfg.generations}")
        try:
            return score_distributed(cands, score, bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()

    def result(self) -> SearchResult:
        """The current outcome (best record, history)."""
        ranked = sorted(self.history, key=_rank_key)
        if not ranked:
            raise RuntimeError("search has evaluated nothing yet")
        for r in ranked[:1]:  # defence in depth: the returned arch meets the limits
            assert self.constraints.ok(self.table, parse_arch(self.space, r["arch"])), r
        return SearchResult(ranked[0], list(self.history), self.generation, self.exhausted, ranked[: self.cfg.parents])
