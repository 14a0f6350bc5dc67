"""Run reports: one self-contained HTML file (plus a Markdown twin) per run."""

from .document import Figure, Report, Section, Table

__all__ = ["Figure", "Report", "Section", "Table"]
