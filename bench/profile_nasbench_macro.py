"""Cost of scoring and training on the nasbench_macro space on CPU (one thread), for sizing the ranking benchmark.

Random weights and random 32 px images (costs do not depend on either). Three measurements:

* ``evaluator``: the paper's estimator one arch at a time (``Evaluator.score``: materialize, BN recal, top-1),
  seconds per arch for 11 random archs;
* ``table``: the prefix-tree scorer (``lwsl_ds.ranking.table.PrefixScorer``) on the heaviest chunk (prefix
  22: 441 canonical archs), contiguous vs channels_last, 2 recal + 5 held-out batches of 100;
* ``step``: one layer-wise training step (every choice of every layer forward + backward through its
  decoder, batch 64), contiguous vs channels_last, interleaved A/B, 4 repeats each.

    .venv/bin/python bench/profile_nasbench_macro.py evaluator table step

On a shared machine the numbers move with the load: run A/B variants interleaved (``step`` does) and quote
the load average (printed).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _net(channels_last: bool = False):
    import torch

    from lwsl_ds.objectives import get_objective
    from lwsl_ds.space import SuperNet, load_space

    torch.manual_seed(0)
    net = SuperNet(load_space("nasbench_macro"), get_objective("ce", 10)).eval()
    return net.to(memory_format=torch.channels_last) if channels_last else net


def _batches(n: int, bs: int = 100, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, 3, 32, 32, generator=g), torch.randint(0, 10, (bs,), generator=g)) for _ in range(n)]


def evaluator() -> None:
    """Seconds per arch of Evaluator.score at two data sizes."""
    from lwsl_ds.search.evaluator import Evaluator
    from lwsl_ds.space import parse_arch

    net = _net()
    for recal, val in [(4, 10), (2, 5)]:
        ev = Evaluator(net, _batches(recal), _batches(val, seed=1), recal_batches=recal, objective="ce")
        rng = random.Random(0)
        archs = [parse_arch(net.space, "".join(str(rng.randrange(3)) for _ in range(8))) for _ in range(12)]
        ev.score(archs[0])  # first read of the batches
        t = time.perf_counter()
        for a in archs[1:]:
            ev.score(a)
        print(f"evaluator: recal {recal}x100 + held-out {val}x100: {(time.perf_counter() - t) / 11:.2f} s/arch",
              flush=True)


def table() -> None:
    """Prefix-tree scoring of the 441 canonical archs below prefix 22, contiguous vs channels_last."""
    from lwsl_ds.config.sections.rank import RankConfig
    from lwsl_ds.ranking.pipeline import resolve_truth
    from lwsl_ds.ranking.table import PrefixScorer, _prefix_filter
    from lwsl_ds.space import load_space

    keys = resolve_truth(RankConfig(), load_space("nasbench_macro")).keys()  # the default NAS-Bench-Macro table
    wanted = _prefix_filter(keys)
    recal, val = [x for x, _ in _batches(2)], _batches(5, seed=1)
    for cl in (True, False):
        sc = PrefixScorer(_net(cl), recal, val, channels_last=cl)
        n = [0]
        t = time.perf_counter()
        sc.score_prefix((2, 2), wanted, lambda k, s: n.__setitem__(0, n[0] + 1))
        dt = time.perf_counter() - t
        print(f"table: channels_last={cl}: {n[0]} archs in {dt:.0f} s, {dt / n[0]:.3f} s/arch", flush=True)


def step() -> None:
    """One layer-wise step (all choices, batch 64), contiguous vs channels_last, interleaved."""
    import torch
    import torch.nn.functional as F

    nets = {False: _net(False).train(), True: _net(True).train()}
    space = nets[False].space
    x0, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

    def one(net, cl: bool) -> None:
        x = x0.contiguous(memory_format=torch.channels_last) if cl else x0
        h = net.stem(x)
        F.cross_entropy(net.decoder_of(-1)(h), y).backward()
        h, rng = h.detach(), random.Random(0)
        for i in range(net.num_layers):
            outs = []
            for k in space.layers[i].choices:
                o = net.choice(i, k)(h)
                F.cross_entropy(net.decoder_of(i)(o), y).backward()
                outs.append(o)
            h = outs[rng.randrange(len(outs))].detach()

    for cl in (False, True):
        one(nets[cl], cl)
    t: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(4):
        for cl in (False, True):
            s = time.perf_counter()
            one(nets[cl], cl)
            t[cl].append(time.perf_counter() - s)
    med = {cl: sorted(v)[len(v) // 2] for cl, v in t.items()}
    print(f"step: contiguous {[round(v, 2) for v in t[False]]} s, channels_last {[round(v, 2) for v in t[True]]} s; "
          f"median ratio {med[False] / med[True]:.2f}x", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the named measurements (evaluator, table, step) with one thread."""
    import torch

    torch.set_num_threads(1)
    names = argv if argv is not None else sys.argv[1:]
    known = {"evaluator": evaluator, "table": table, "step": step}
    bad = [n for n in names if n not in known]
    if bad or not names:
        print(f"error: choose from {sorted(known)}, got {names}", file=sys.stderr)
        return 2
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for n in names:
        known[n]()
    print(f"load average at end: {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
