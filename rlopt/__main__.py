"""``python -m rlopt`` runs the ``rlopt`` command."""

from __future__ import annotations

import sys

from rlopt.cli.main import main

sys.exit(main())
