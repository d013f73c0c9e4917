#!/usr/bin/env python
"""Write the report of a study (finished or still running): same as ``rlopt report``.

Usage:
    python scripts/report.py runs/<study name> [--out DIR] [--storage URL] [--study-file FILE]
"""

from __future__ import annotations

import sys

from rlopt.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
