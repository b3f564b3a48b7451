"""Stage entry point of the report rules: the paper-style verification table."""

from __future__ import annotations

from pathlib import Path

from brownface.report.tables import verification_table


def report_verification(results: list[str], *, csv: str, markdown: str, latex: str) -> None:
    """Every evaluation JSON as one model x benchmark table, in CSV, Markdown and LaTeX."""
    verification_table([Path(r) for r in results], Path(csv), Path(markdown), Path(latex))
