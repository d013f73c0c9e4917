#!/usr/bin/env python
"""Run or resume a study file: the same as ``rlopt study run FILE [--workers N] [--storage URL]``.

Examples:
    python scripts/run_study.py studies/quickstart.yaml
    python scripts/run_study.py studies/quickstart.yaml --workers 2
    python scripts/run_study.py studies/x.yaml --storage postgresql://user:pass@host/db   # on each machine
"""

from __future__ import annotations

import sys

from rlopt.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["study", "run", *sys.argv[1:]]))
