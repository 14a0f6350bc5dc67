"""``report.md`` of the GPU check from its report document: one table per check, skips and errors in words."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]

from .memory_check import PAPER_PCT

GIB = 2 ** 30


def _num(v: Any, fmt: str = "{:.1f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def _size(v: Any, unit: int) -> str:
    return f"{v / unit:.3f}" if isinstance(v, (int, float)) else "-"


def _note(item: dict[str, Any]) -> str:
    """Why an item has no numbers: its skip reason or its error line."""
    if item.get("status") == "skipped":
        return f"skipped: {item.get('reason', '')}"
    if item.get("status") == "failed":
        return f"**failed**: {item.get('error', '')}"
    return ""


def _plan(micro: dict[str, int] | None) -> str:
    """A balanced mode's micro-batches per layer, only where more than one (stem = -1)."""
    if not micro:
        return ""
    split = {k: v for k, v in micro.items() if v > 1}
    return f"micro-batches {split}" if split else "micro-batches: 1 in every layer (nothing to split at this size)"


def _data(c: dict[str, Any]) -> list[str]:
    src = "generated JPEGs" if c.get("generated") else f"`{c.get('images')}`"
    md = [f"{c.get('distinct_images', '?')} distinct images ({src}) listed {c.get('repeat', '?')} times, "
          f"{c.get('resolution', '?')} px, batch {c.get('batch', '?')}, train augmentation; DALI threads "
          f"{c.get('dali_threads', '?')}, torchvision workers {c.get('torchvision_workers', '?')}.", "",
          "| pipeline | images/s | images timed | output | note |", "| --- | ---: | ---: | --- | --- |"]
    for it in c.get("items", []):
        md.append(f"| {it.get('pipeline')} | {_num(it.get('images_per_s'), '{:.0f}')} | {it.get('images', '-')} | "
                  f"{it.get('output_device', '-')} | {_note(it)} |")
    return md


def _train(c: dict[str, Any]) -> list[str]:
    md = ["| run | backend | comm | images/s | loss first -> last | falls | steps | wall s | note |",
          "| --- | --- | --- | ---: | --- | --- | ---: | ---: | --- |"]
    digest = []
    for it in c.get("items", []):
        if it.get("kind") == "digest":
            digest.append(it)
            continue
        loss = (f"{it['loss_first']:.3f} -> {it['loss_last']:.3f}" if "loss_first" in it else "-")
        falls = {True: "yes", False: "**no**"}.get(it.get("loss_falls"), "-")
        md.append(f"| {it.get('run')} | {it.get('backend')} | {it.get('comm', '-')} | "
                  f"{_num(it.get('images_per_s'))} | {loss} | {falls} | {it.get('steps', '-')} | "
                  f"{_num(it.get('wall_seconds'))} | {_note(it)} |")
    for d in digest:
        if d.get("status") == "failed" and "rel_l2_diff" not in d:
            md += ["", f"Digest: {_note(d)}"]
            continue
        at = f" ({d['max_abs_diff_at']})" if d.get("max_abs_diff_at") else ""
        md += ["", f"Digest ({d.get('runs')}, {d.get('device')}): parameter sha256 "
                   f"{'equal' if d.get('digests_equal') else 'different'}; largest difference "
                   f"{_num(d.get('max_abs_diff'), '{:.3g}')}{at}, relative L2 "
                   f"{_num(d.get('rel_l2_diff'), '{:.3g}')} (tolerance {d.get('rel_tol')}): "
                   f"{'within' if d.get('within_tolerance') else '**outside**'}. {_note(d)}"]
    return md


def _memory(c: dict[str, Any]) -> list[str]:
    md = [f"Space `{c.get('space')}`, {c.get('resolution')} px, worst-case draws, one step, accounting backend "
          "(no optimizer). Measured: `max_memory_allocated` / `max_memory_reserved` of the step (parameters, "
          "batch and gradients included). Accounted: activations + batch, and + model states of one fp32 Adam "
          "engine. % = of SPOS at the same batch.", ""]
    if c.get("skipped_reason"):
        md += [f"Measured columns skipped: {c['skipped_reason']}.", ""]
    by_batch: dict[int, list[dict[str, Any]]] = {}
    for it in c.get("items", []):
        by_batch.setdefault(it.get("batch"), []).append(it)
    for batch, items in by_batch.items():
        spos = next((i for i in items if i.get("mode") == "spos"), {})

        def pct(it: dict[str, Any], key: str) -> str:
            a, b = it.get(key), spos.get(key)
            return f"{100 * a / b:.1f}%" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"

        sizes = [v for it in items for k, v in it.items() if k.endswith("_bytes") and isinstance(v, (int, float))]
        unit, u = (GIB, "GiB") if sizes and max(sizes) >= GIB / 4 else (2 ** 20, "MiB")  # small: the rehearsal
        md += [f"**batch {batch}**", "",
               f"| mode | allocated {u} | % | reserved {u} | % | accounted act. {u} | % | + states {u} | % | paper | "
               "note |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for it in items:
            mode = it.get("mode", "?")
            paper = f"{PAPER_PCT[mode]}%" if mode in PAPER_PCT else ("100%" if mode == "spos" else "")
            note = _note(it) or _plan(it.get("micro_batches"))
            md.append(f"| {mode} | {_size(it.get('measured_peak_bytes'), unit)} | {pct(it, 'measured_peak_bytes')} | "
                      f"{_size(it.get('reserved_bytes'), unit)} | {pct(it, 'reserved_bytes')} | "
                      f"{_size(it.get('accounted_activation_peak_bytes'), unit)} | "
                      f"{pct(it, 'accounted_activation_peak_bytes')} | "
                      f"{_size(it.get('accounted_device_peak_bytes'), unit)} | "
                      f"{pct(it, 'accounted_device_peak_bytes')} | {paper} | {note} |")
        md.append("")
    return md


def _pytest(c: dict[str, Any]) -> list[str]:
    md = []
    for it in c.get("items", []):
        counts = ", ".join(f"{n} {k}" for k, n in (it.get("counts") or {}).items())
        md.append(f"`{it.get('tests')}`: {counts or '-'} {_note(it)}")
        md += [f"- {s}" for s in it.get("skips", [])]
    return md


SECTIONS = {"data": ("1. Data: DALI mixed vs DALI CPU vs torchvision", _data),
            "train": ("2. DeepSpeed engines per layer group (deepspeed --num_gpus 1 launchers/train.py)", _train),
            "memory": ("3. Table IV on a device: measured vs accounted peaks", _memory),
            "pytest": ("4. GPU-only tests (pytest -m gpu)", _pytest)}


def render(report: dict[str, Any]) -> str:
    """The whole Markdown report."""
    m = report.get("machine", {})
    dev = f"{m['gpu']} ({m.get('gpu_memory_gib')} GiB)" if m.get("gpu") else "no CUDA device"
    md = [f"# GPU check ({report.get('profile')} profile), {report.get('date')}", "",
          f"Machine: {dev}, {m.get('cpus')} CPUs, "
          f"Python {m.get('python')}, torch {m.get('torch')} (CUDA {m.get('torch_cuda')}), torchvision "
          f"{m.get('torchvision')}, DeepSpeed {m.get('deepspeed')}, DALI {m.get('dali')}, fvcore {m.get('fvcore')}. "
          f"Total {report.get('total_seconds', '?')} s of a {report.get('budget_s', 0):.0f} s budget"
          + (" (checks run concurrently: a rehearsal, the throughputs are no benchmark)." if report.get("concurrent")
             else "."), "",
          "| check | status | seconds | limit s | error |", "| --- | --- | ---: | ---: | --- |"]
    for name, c in report.get("checks", {}).items():
        md.append(f"| {name} | {c.get('status')} | {_num(c.get('seconds'))} | {_num(c.get('limit_s'), '{:.0f}')} | "
                  f"{c.get('error') or c.get('reason') or ''} |")
    for name, c in report.get("checks", {}).items():
        title, fn = SECTIONS[name]
        md += ["", f"## {title}", ""]
        if c.get("status") == "not run":
            md.append("Not run (yet).")
            continue
        if c.get("status") == "skipped" and not c.get("items"):
            md.append(f"Skipped: {c.get('reason')}")
            continue
        md += fn(c)
        if c.get("error"):
            md += ["", f"Check error: {c['error']}"]
    return "\n".join(md) + "\n"
