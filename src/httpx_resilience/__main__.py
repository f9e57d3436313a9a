"""``python -m httpx_resilience``: the command line, which lives in ``_cli/``."""

from __future__ import annotations

import sys

from ._cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
