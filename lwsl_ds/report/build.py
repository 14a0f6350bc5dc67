"""``lwsl report <experiment dir>``: ``<exp>/report/report.html`` (+ ``report.md``) from whatever phases ran.

The phase folders are found by their marker or files (``lwsl_ds.config.layout``), whatever their names,
so the report works for any experiment, not only the demo's. It opens with a summary (best arch, its cost,
search score, retrained top-1, ranking, memory saving, each with the split it was measured on); the phase
details follow and the full configuration comes last. A phase that did not run is simply absent from
the summary, never a crash: the report is also a status page.
"""

from __future__ import annotations

from pathlib import Path

from ..config.layout import PHASES, claim, detect_phase, phase_folders
from ..config.schema import ConfigError
from .document import Report, Section
from .phases import config_section, memory_section, retrain_section, search_section, supernet_section
from .ranking import ranking_section, shift_section
from .summary import summary_section

__all__ = ["build_report"]


def build_report(exp: Path, *, screenshot: bool = False) -> tuple[Path, Path]:
    """Write the report of experiment directory ``exp`` into ``exp/report``; optionally a Chromium screenshot."""
    exp = Path(exp)
    if not exp.is_dir():
        raise ConfigError(f"{exp}: no such experiment directory")
    own = detect_phase(exp)
    if own is not None and own[0] != "report":
        raise ConfigError(f"{exp}: is a {PHASES.get(own[0], own[0])} folder ({own[1].name}), not an experiment "
                          f"directory; pass the folder that holds it ({exp.resolve().parent})")
    found = [(p, f) for p, f in phase_folders(exp) if p != "report"]
    out = claim(exp / "report", "report", option="experiment directory")
    figs = out / "figures"
    sections: list[Section] = [summary_section(exp, found)]
    order = ("supernet", "memory", "search", "retrain")  # the order the phases run in
    for phase, folder in sorted(found, key=lambda pf: (order.index(pf[0]) if pf[0] in order else len(order),
                                                       str(pf[1]))):
        if phase == "supernet":
            sections.append(supernet_section(folder, exp, figs))
        elif phase == "search":
            sections.append(search_section(folder, exp))
        elif phase == "retrain":
            sections.append(retrain_section(folder, exp, figs))
        elif phase == "memory":
            sections.append(memory_section(folder, exp))
    for title, phase in (("Super-net training", "supernet"), ("Search", "search"), ("Retraining", "retrain")):
        if not any(p == phase for p, _ in found):
            sections.append(Section(title, missing=f"{PHASES[phase]} did not run in this experiment"))
    sections += [ranking_section(exp), shift_section(exp), config_section(exp, found)]
    html, md = Report(f"lwsl_ds experiment report: {exp.resolve().name}", sections).write(out)
    if screenshot:
        from .render import find_chromium, screenshot as shoot

        if find_chromium():
            shoot(html, out / "screenshot.png")
    return html, md
