"""``rlopt optimizers``: the optimizer registry as a table."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("optimizers", help="list the registered optimizers and their defaults")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlopt.optim import OPTIMIZERS

    table = Table(
        title="rlopt optimizers (also: pytorch_optimizer:<name> for any pytorch-optimizer optimizer)"
    )
    for column in ("name", "lr", "betas (meaning)", "eps", "weight_decay", "extra", "source", "paper"):
        table.add_column(column, overflow="fold")
    for name, spec in sorted(OPTIMIZERS.items()):
        betas = ", ".join(f"{b:g} ({m})" for b, m in zip(spec.betas, spec.beta_names, strict=True)) or "-"
        extra = ", ".join(f"{k}={v}" for k, v in spec.extra.items()) or "-"
        eps = "-" if spec.eps is None else f"{spec.eps:g}"
        table.add_row(
            name, f"{spec.lr:g}", betas, eps, f"{spec.weight_decay:g}", extra, spec.source, spec.paper
        )
    Console(width=200).print(table)
    return 0
