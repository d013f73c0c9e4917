"""rlopt: which adaptive optimizer, with which betas, should a PPO or SAC agent use, and how sure are we."""

from __future__ import annotations

__version__ = "0.1.0"
