"""``rlopt optimizers``: the optimizer registry as a table that fits the terminal.

The console takes the terminal's width (``COLUMNS`` when set, 80 when the output is not a terminal).
From :data:`WIDE` columns on, one row per optimizer with a column per default; below, one row per
optimizer with its defaults, extra arguments and paper as lines of a second column, so that nothing is
squeezed into one-word columns at 80.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

WIDE = 140
"""Least console width for the one-column-per-default table."""
TITLE = "rlopt optimizers (also: pytorch_optimizer:<name> for any pytorch-optimizer optimizer)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("optimizers", help="list the registered optimizers and their defaults")
    parser.set_defaults(func=run)


def _cells(spec: Any) -> dict[str, str]:
    return {
        "lr": f"{spec.lr:g}",
        "betas (meaning)": ", ".join(f"{b:g} ({m})" for b, m in zip(spec.betas, spec.beta_names, strict=True))
        or "-",
        "eps": "-" if spec.eps is None else f"{spec.eps:g}",
        "weight_decay": f"{spec.weight_decay:g}",
        "extra": ", ".join(f"{k}={v}" for k, v in spec.extra.items()) or "-",
        "source": spec.source,
        "paper": spec.paper,
    }


def optimizers_table(width: int) -> Table:
    """The registry as a rich table laid out for a console ``width`` columns wide."""
    from rlopt.optim import OPTIMIZERS

    specs = sorted(OPTIMIZERS.items())
    if width >= WIDE:
        table = Table(title=TITLE)
        columns = ["name", *_cells(specs[0][1])]
        for column in columns:
            table.add_column(column, overflow="fold")
        for name, spec in specs:
            table.add_row(name, *_cells(spec).values())
        return table
    table = Table(title=TITLE, show_lines=True)
    table.add_column("name", no_wrap=True)
    table.add_column("defaults, betas (meaning), extra arguments, source: paper", overflow="fold")
    for name, spec in specs:
        cells = _cells(spec)
        text = "\n".join(
            (
                f"lr {cells['lr']}, eps {cells['eps']}, weight_decay {cells['weight_decay']}",
                f"betas {cells['betas (meaning)']}",
                f"extra {cells['extra']}",
                f"{cells['source']}: {cells['paper']}",
            )
        )
        table.add_row(name, text)
    return table


def run(args: argparse.Namespace) -> int:
    console = Console()
    console.print(optimizers_table(console.width))
    return 0
