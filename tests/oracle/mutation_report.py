"""Print the kill rate and the surviving mutants of a mutmut run (``make mutation``), for the given patterns.

Usage: python tests/oracle/mutation_report.py PATTERN [PATTERN ...]   (run in the checkout, after mutmut run)
Reads ``mutmut results --all true`` (one "name: status" line per mutant) and counts only the mutants whose
name matches a pattern (fnmatch), i.e. the ones the run was asked to test. Timeouts count as killed, as in
mutmut's own score; "no tests" (no selected test reaches the code) counts as surviving.
"""

from __future__ import annotations

import collections
import fnmatch
import subprocess
import sys
from pathlib import Path


def main(patterns: list[str]) -> int:
    """Print counts per status, the kill rate and every survivor; exit 1 when no mutant was tested."""
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    status: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, st = line.strip().rpartition(": ")
        if sep and any(fnmatch.fnmatch(name, p) for p in patterns):
            status[name] = st
    counts = collections.Counter(status.values())
    tested = sum(n for s, n in counts.items() if s not in ("not checked", "skipped"))
    if not tested:
        print("mutation: no mutant of the given patterns was tested (run `mutmut run` first)")
        return 1
    killed = counts["killed"] + counts["timeout"]
    print("mutation: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
    for name, st in sorted(status.items()):
        if st in ("survived", "no tests", "suspicious"):
            print(f"  {st}: {name}")
    print(f"mutation kill rate: {killed}/{tested} = {100 * killed / tested:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
