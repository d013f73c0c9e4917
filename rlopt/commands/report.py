"""``rlopt report``: not yet implemented (placeholder registered so the CLI lists it)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="(not yet implemented)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise ValueError("'rlopt report' is not implemented yet")
