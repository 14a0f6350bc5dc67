"""FLOPs / params report of a search space: fixed costs, per-layer table, exact range, histogram.

    python profiling/flops_report.py --space paper
    python profiling/flops_report.py --space nasbench_macro --out runs/x/profiling --samples 200000
    python profiling/flops_report.py --space demo --resolution 64 --metric conv_linear

Writes ``flops_<space>_r<res>.md`` (tables) and ``flops_<space>_r<res>.png`` (histogram of sub-net MACs
and params) into ``--out`` (default ``profiling/out``). Spaces of up to 2M archs are enumerated; larger
ones are sampled uniformly (``--samples``). Min/max are always exact (per-layer min/max).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lwsl_ds, not the venv's


def main(argv: list[str] | None = None) -> int:
    """Build (or read) the cost table and write the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="demo", help="preset name or space YAML")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--metric", default="flops", choices=["flops", "conv_linear"])
    p.add_argument("--samples", type=int, default=100_000, help="uniform samples when the space is too big to list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="cost-table cache (default ~/.cache/lwsl_ds/flops)")
    p.add_argument("--out", default="profiling/out")
    args = p.parse_args(argv)

    import itertools

    import numpy as np

    from lwsl_ds.flops import build_cost_table
    from lwsl_ds.space import load_space

    space = load_space(args.space, args.resolution, args.num_classes)
    table = build_cost_table(space, args.cache_dir)
    n = space.num_archs()
    if n <= 2_000_000:
        arr = np.array(list(itertools.product(*(L.choices for L in space.layers))), dtype=np.int64)
        how = f"all {n:,} archs"
    else:
        rng = np.random.default_rng(args.seed)
        arr = np.stack([np.asarray(L.choices)[rng.integers(0, len(L.choices), args.samples)] for L in space.layers], 1)
        how = f"{args.samples:,} uniform samples of {n:.3e} archs"
    fl, pa = table.costs(arr, args.metric), table.costs(arr, "params")
    flo, fhi = table.bounds(args.metric)
    plo, phi = table.bounds("params")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"flops_{space.name}_r{space.resolution}"
    lines = [f"# Cost table: space `{space.name}`, {space.resolution} px, {space.num_classes} classes", "",
             f"Convention: {table.meta.get('convention', '')}", "",
             "| part | MACs (fvcore) | MACs (conv+linear) | params |", "| --- | ---: | ---: | ---: |"]
    for name, c in table.fixed.items():
        lines.append(f"| {name} | {c['flops']:,} | {c['conv_linear']:,} | {c['params']:,} |")
    lines += ["", f"## Per layer ({args.metric} MACs / params)", "",
              "| layer | input | " + " | ".join(c.name for c in space.choices) + " |",
              "| --- | --- | " + " | ".join("---:" for _ in space.choices) + " |"]
    t, tp = table.array(args.metric), table.array("params")
    for i, L in enumerate(space.layers):
        cells = [f"{t[i, k] / 1e6:.2f}M / {tp[i, k] / 1e3:.1f}k" if table.allowed[i, k] else "-"
                 for k in range(len(space.choices))]
        lines.append(f"| {i} | {L.in_resolution}x{L.in_resolution}x{L.in_channels} s{L.stride} | " + " | ".join(cells) + " |")
    q = np.percentile(fl, [5, 25, 50, 75, 95])
    lines += ["", "## Sub-nets", "",
              f"- {args.metric} MACs: exact range {flo:,} .. {fhi:,} ({flo / 1e6:.2f}M .. {fhi / 1e6:.2f}M)",
              f"- params: exact range {plo:,} .. {phi:,}",
              f"- over {how}: {args.metric} percentiles 5/25/50/75/95 = "
              + " / ".join(f"{v / 1e6:.2f}M" for v in q),
              f"- params median {np.median(pa) / 1e6:.3f}M", ""]
    (out / f"{stem}.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    axes[0].hist(fl / 1e6, bins=60, color="tab:blue")
    axes[0].set_xlabel(f"{args.metric} MACs (M)")
    axes[1].hist(pa / 1e6, bins=60, color="tab:orange")
    axes[1].set_xlabel("params (M)")
    for ax in axes:
        ax.set_ylabel("archs")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{space.name} @ {space.resolution} px: {how}")
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png")
    plt.close(fig)
    print("\n".join(lines))
    print(f"wrote {out / (stem + '.md')} and {out / (stem + '.png')}")
    return 0


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
