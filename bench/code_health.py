"""Code-health numbers for the consolidation work: longest functions, import cycles between sub-packages, launcher sizes.

Reads the source as text (``ast``), imports nothing from the package, so it runs in any Python 3.11+:

    python bench/code_health.py            # Markdown tables on stdout
    python bench/code_health.py --json     # the same numbers as JSON

Every ``import lwsl_ds.X`` / ``from lwsl_ds.X import`` counts, at module level or inside a function (a lazy
import still ties the two sub-packages together); ``--top-level`` counts module-level imports only.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = "lwsl_ds"


def longest_functions(root: Path, top: int) -> list[tuple[int, str]]:
    """(lines, 'path:qualname') of the ``top`` longest functions under ``root``."""
    rows: list[tuple[int, str]] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = f"{prefix}{child.name}"
                    rows.append((child.end_lineno - child.lineno + 1, f"{path.relative_to(REPO)}:{name}"))
                    visit(child, f"{name}.")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")

        visit(tree, "")
    return sorted(rows, key=lambda r: (-r[0], r[1]))[:top]


def function_lengths(roots: list[Path]) -> list[int]:
    """Line counts of every function under ``roots``."""
    out = []
    for root in roots:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.append(node.end_lineno - node.lineno + 1)
    return out


def subpackage(module: str) -> str | None:
    """'lwsl_ds.engines.plan' -> 'engines'; top-level modules map to their own name."""
    parts = module.split(".")
    return parts[1] if parts[0] == PKG and len(parts) > 1 else None


def import_graph(top_level_only: bool) -> dict[str, set[str]]:
    """Sub-package -> the other sub-packages it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted((REPO / PKG).rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if module == PKG:  # lwsl_ds/__init__.py: the package's front door, not a sub-package
            continue
        me = subpackage(module) or subpackage(module + ".x")
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        for node in nodes:
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import: resolve against this module's package
                    base = module.split(".")[: len(module.split(".")) - node.level + (rel.name == "__init__")]
                    target = ".".join(base + ([node.module] if node.module else []))
                    targets = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
                elif node.module:
                    targets = [node.module] if node.module != PKG else [f"{PKG}.{a.name}" for a in node.names]
            for t in targets:
                other = subpackage(t)
                if other and me and other != me:
                    graph.setdefault(me, set()).add(other)
        graph.setdefault(me, set())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def cycle_edges(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """The edges inside one strongly connected component, 'a -> b'."""
    return [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]


def launcher_lines() -> dict[str, int]:
    """Line count of every launcher."""
    return {p.name: len(p.read_text().splitlines()) for p in sorted((REPO / "launchers").glob("*.py"))}


def main() -> None:
    """Print the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--top-level", action="store_true", help="count module-level imports only")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    longest = longest_functions(REPO / PKG, a.top) + []
    longest_l = longest_functions(REPO / "launchers", a.top)
    lengths = sorted(function_lengths([REPO / PKG, REPO / "launchers"]))
    graph = import_graph(a.top_level)
    comps = cycles(graph)
    result = {
        "longest_functions": [{"lines": n, "where": w} for n, w in sorted(longest + longest_l, key=lambda r: -r[0])[: a.top]],
        "functions": len(lengths), "median_function_lines": lengths[len(lengths) // 2],
        "import_cycles": [{"packages": c, "edges": cycle_edges(graph, c)} for c in comps],
        "launcher_lines": launcher_lines(),
    }
    if a.json:
        print(json.dumps(result, indent=1))
        return
    print(f"## Longest functions (lwsl_ds + launchers; {result['functions']} functions, "
          f"median {result['median_function_lines']} lines)\n\n| lines | function |\n| ---: | --- |")
    for r in result["longest_functions"]:
        print(f"| {r['lines']} | `{r['where']}` |")
    scope = "module-level imports" if a.top_level else "all imports, lazy ones included"
    print(f"\n## Import cycles between lwsl_ds sub-packages ({scope})\n")
    for c in result["import_cycles"]:
        print(f"- {' <-> '.join(c['packages'])}: " + ", ".join(c["edges"]))
    if not result["import_cycles"]:
        print("none")
    print("\n## Launcher line counts\n\n| launcher | lines |\n| --- | ---: |")
    for k, v in result["launcher_lines"].items():
        print(f"| {k} | {v} |")
    print(f"| total | {sum(result['launcher_lines'].values())} |")


if __name__ == "__main__":
    main()
