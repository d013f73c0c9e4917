#!/usr/bin/env python
"""Train one agent: the same as ``rlopt train ...`` (see ``python scripts/train.py --help``)."""

from __future__ import annotations

import sys

from rlopt.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
