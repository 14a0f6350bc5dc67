"""A report as data (sections of text, tables and figures) rendered to self-contained HTML and Markdown.

HTML embeds every image as a base64 data URI so the single file can be mailed or archived; the Markdown
twin references the PNG files next to it.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from ..common.atomic import write_atomic

__all__ = ["Table", "Figure", "Section", "Report"]


@dataclass
class Table:
    """A small table: header row plus rows of already formatted cells."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    """A PNG file on disk with a caption."""

    path: Path
    caption: str = ""


@dataclass
class Section:
    """A titled block of paragraphs, tables and figures; ``missing`` explains a phase that did not run."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    missing: str = ""


@dataclass
class Report:
    """The whole report."""

    title: str
    sections: list[Section] = field(default_factory=list)

    def to_html(self) -> str:
        """Self-contained HTML (images inline)."""
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>",
                 "<nav><ol>" + "".join(f"<li><a href='#s{i}'>{html.escape(s.title)}</a></li>"
                                       for i, s in enumerate(self.sections)) + "</ol></nav>"]
        for i, s in enumerate(self.sections):
            parts.append(f"<section id='s{i}'><h2>{html.escape(s.title)}</h2>")
            if s.missing:
                parts.append(f"<p class='missing'>{html.escape(s.missing)}</p>")
            parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
            for t in s.tables:
                parts.append("<table>" + (f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""))
                parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr>")
                parts += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in t.rows]
                parts.append("</table>")
            for f in s.figures:
                data = base64.b64encode(Path(f.path).read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{html.escape(f.caption or Path(f.path).name)}' "
                             f"src='data:image/png;base64,{data}'><figcaption>{html.escape(f.caption)}"
                             "</figcaption></figure>")
            parts.append("</section>")
        # Marks the page once loaded: how many images decoded and which did not (read by the render test).
        parts.append("<script>window.addEventListener('load',()=>{const im=[...document.images];"
                     "const bad=im.filter(i=>!(i.complete&&i.naturalWidth>0)).map(i=>i.alt);"
                     "document.body.dataset.imagesOk=im.length-bad.length;"
                     "document.body.dataset.imagesBroken=JSON.stringify(bad);});</script>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def to_markdown(self, base: Path) -> str:
        """Markdown twin; figure links are relative to ``base`` (the folder the .md is written to)."""
        out = [f"# {self.title}", ""]
        for s in self.sections:
            out += [f"## {s.title}", ""]
            if s.missing:
                out += [f"*{s.missing}*", ""]
            for p in s.paragraphs:
                out += [p, ""]
            for t in s.tables:
                if t.caption:
                    out += [f"**{t.caption}**", ""]
                out.append("| " + " | ".join(t.header) + " |")
                out.append("|" + " --- |" * len(t.header))
                out += ["| " + " | ".join(str(c) for c in r) + " |" for r in t.rows]
                out.append("")
            for f in s.figures:
                rel = os.path.relpath(Path(f.path).resolve(), base.resolve())
                out += [f"![{f.caption}]({rel})", ""]
        return "\n".join(out)

    def write(self, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write ``<stem>.html`` and ``<stem>.md`` atomically; returns both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix, text in ((".html", self.to_html()), (".md", self.to_markdown(out))):
            p = out / f"{stem}{suffix}"
            write_atomic(p, text)
            paths.append(p)
        return paths[0], paths[1]


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#eee}caption{font-weight:bold;text-align:left;padding:4px 0}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:.9em}
.missing{color:#a40;font-style:italic}nav ol{columns:2}
"""
