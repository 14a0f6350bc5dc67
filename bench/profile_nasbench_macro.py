"""Cost of scoring and training on the nasbench_macro space on CPU (one thread), for sizing the ranking benchmark.

Random weights and random 32 px images (costs do not depend on either). Three measurements:

* ``evaluator``: the paper's estimator one arch at a time (``Evaluator.score``: materialize, BN recal, top-1),
  seconds per arch for 11 random archs;
* ``table``: the prefix-tree scorer (``lwsl_ds.ranking.table.PrefixScorer``) on the heaviest chunk (prefix
  22: 441 canonical archs), contiguous vs channels_last, 2 recal + 5 held-out batches of 100;
* ``step``: one layer-wise training step (every choice of every layer forward + backward through its
  decoder, batch 64): contiguous, channels_last weights and input, channels_last input only (what
  ``train.channels_last`` does), interleaved, 4 repeats each;
* ``threads``: the same step with 1 vs 2 intra-op threads, interleaved (needs two idle cores to mean anything);
* ``compile``: layer 0's choices (block + decoder + loss, forward + backward) eager vs ``torch.compile``d:
  the compile cost and the steady-state time (compiling all 8 layers costs 8x the compile time printed);
* ``loader``: seconds per training batch of 64 from the real CIFAR-10 JPEGs (torchvision backend, the
  bench's augmentation, in the main process), against the step time: the most that overlapping loading
  with compute (``data.num_workers`` > 0) could save. Needs ``$LWSL_DATA_DIR/cifar10-jpeg``.

    .venv/bin/python bench/profile_nasbench_macro.py evaluator table step threads compile loader

On a shared machine the numbers move with the load: run A/B variants interleaved (``step`` does) and quote
the load average (printed).
"""

from __future__ import annotations

import os
import random
import sys
import time
from statistics import median_high
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


def _layerwise_step(net, x, y) -> None:
    """One layer-wise step: the stem's and every choice's local loss, forward + backward (no optimizer)."""
    import torch.nn.functional as F

    h = net.stem(x)
    F.cross_entropy(net.decoder_of(-1)(h), y).backward()
    h, rng = h.detach(), random.Random(0)
    for i in range(net.num_layers):
        outs = []
        for k in net.space.layers[i].choices:
            o = net.choice(i, k)(h)
            F.cross_entropy(net.decoder_of(i)(o), y).backward()
            outs.append(o)
        h = outs[rng.randrange(len(outs))].detach()


def _interleaved(variants: dict, repeats: int = 4) -> dict:
    """Seconds of each variant (a callable), run A/B/A/B so that load changes hit every variant alike."""
    for f in variants.values():
        f()  # warm-up: first-touch allocations
    t: dict = {k: [] for k in variants}
    for _ in range(repeats):
        for k, f in variants.items():
            s = time.perf_counter()
            f()
            t[k].append(time.perf_counter() - s)
    return t


def step() -> None:
    """One layer-wise step (all choices, batch 64): contiguous, channels_last weights + input, input only."""
    import torch

    nets = {"contiguous": _net(False).train(), "nhwc": _net(True).train(), "nhwc_input": _net(False).train()}
    x0, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    xn = x0.contiguous(memory_format=torch.channels_last)
    xs = {"contiguous": x0, "nhwc": xn, "nhwc_input": xn}
    t = _interleaved({k: (lambda k=k: _layerwise_step(nets[k], xs[k], y)) for k in nets})
    base = median_high(t["contiguous"])
    print("step: " + "; ".join(f"{k} {[round(v, 2) for v in t[k]]} s ({base / median_high(t[k]):.2f}x)" for k in t)
          + " (channels_last weights + input: nhwc; input only, as train.channels_last does: nhwc_input)",
          flush=True)


def threads() -> None:
    """The layer-wise step at 1 vs 2 intra-op threads, interleaved (batch 64, contiguous)."""
    import torch

    net = _net(False).train()
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

    def at(n: int):
        def run() -> None:
            torch.set_num_threads(n)
            _layerwise_step(net, x, y)
        return run

    t = _interleaved({1: at(1), 2: at(2)})
    torch.set_num_threads(1)
    print(f"threads: 1 thread {[round(v, 2) for v in t[1]]} s, 2 threads {[round(v, 2) for v in t[2]]} s; "
          f"median speed-up {median_high(t[1]) / median_high(t[2]):.2f}x", flush=True)


def compiled() -> None:
    """Layer 0's choices (block + decoder + CE, fwd + bwd) eager vs torch.compile: compile cost and steady state."""
    import torch
    import torch.nn.functional as F

    net = _net(False).train()
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    h = net.stem(x).detach()
    pairs = [(net.choice(0, k), net.decoder_of(0)) for k in net.space.layers[0].choices]

    def local(block, dec, h, y):
        return F.cross_entropy(dec(block(h)), y)

    fns = [torch.compile(local) for _ in pairs]  # one graph per choice, as training would need

    def eager() -> None:
        for block, dec in pairs:
            local(block, dec, h, y).backward()

    def comp() -> None:
        for f, (block, dec) in zip(fns, pairs):
            f(block, dec, h, y).backward()

    s = time.perf_counter()
    comp()  # compiles forward and backward of every choice
    cost = time.perf_counter() - s
    t = _interleaved({"eager": eager, "compiled": comp})
    print(f"compile: layer 0, {len(pairs)} choices: compiling took {cost:.0f} s; eager "
          f"{[round(v, 3) for v in t['eager']]} s, compiled {[round(v, 3) for v in t['compiled']]} s; "
          f"median speed-up {median_high(t['eager']) / median_high(t['compiled']):.2f}x", flush=True)


def loader() -> None:
    """Seconds per training batch of 64 from the real CIFAR-10 JPEGs (main process) against one step."""
    import torch

    from lwsl_ds.config.sections.data import DataConfig
    from lwsl_ds.data.loader import build_loader

    cfg = DataConfig(source="cifar10", resolution=32, backend="torchvision", num_workers=0, max_per_class=500)
    it = iter(build_loader(cfg, "train", batch_size=64, augment="train"))
    next(it)  # opens the packed file
    s, n = time.perf_counter(), 20
    for _ in range(n):
        next(it)
    per_batch = (time.perf_counter() - s) / n
    net = _net(False).train()
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    step_s = median_high(_interleaved({"step": lambda: _layerwise_step(net, x, y)}, repeats=3)["step"])
    print(f"loader: {per_batch:.3f} s per batch of 64 (decode + pad-crop + flip, main process) against a "
          f"{step_s:.2f} s step: loading is {100 * per_batch / (per_batch + step_s):.1f}% of a step, the most "
          "that overlapping it could save", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the named measurements (evaluator, table, step) with one thread."""
    import torch

    torch.set_num_threads(1)
    names = argv if argv is not None else sys.argv[1:]
    known = {"evaluator": evaluator, "table": table, "step": step, "threads": threads, "compile": compiled,
             "loader": loader}
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
