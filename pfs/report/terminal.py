"""Tables for the terminal (the CLI and ``pfs demo`` print the same ones)."""

from __future__ import annotations

from typing import Any


def rich_table(frame: Any, title: str | None = None) -> Any:
    """A DataFrame as a rich Table, so wide comparison tables stay readable in a terminal."""
    from rich.table import Table

    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), justify="left" if col == frame.columns[0] else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*["" if v is None else str(v) for v in row])
    return table
