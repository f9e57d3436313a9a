"""Numbers read from text that strangers write: HTTP headers and environment variables.

Python's ``int()``, ``float()`` and ``str.isdigit()`` accept any Unicode digit (``"²"``,
``"٣"``) and ``int()`` ignores underscores and surrounding spaces; HTTP (RFC 9110) and shell
variables mean ASCII ``0-9`` only. Everything here matches ASCII digits with an explicit class,
so a hostile or careless header is refused as garbage instead of crashing or being misread.
"""

from __future__ import annotations

import re

__all__ = ["ascii_decimal", "ascii_int"]

_INT = re.compile(r"[0-9]+")
# Digits with an optional fraction ("1.5"), as some servers write delay-seconds.
_MAX_DIGITS = 30
_HUGE = 10**_MAX_DIGITS
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def ascii_int(text: str) -> int | None:
    """The non-negative integer ``text`` spells in ASCII digits (surrounding whitespace
    allowed), or ``None``. Any length is accepted: a caller that bounds the value compares
    the result, so that a huge number reads as "too large", not as garbage."""
    text = text.strip(" \t")
    if not _INT.fullmatch(text):
        return None
    # int() refuses strings of over 4,300 digits (CVE-2020-10735); no bound a caller compares
    # with comes near _HUGE, so any longer number is simply "more than anyone allows".
    return int(text) if len(text) <= _MAX_DIGITS else _HUGE


def ascii_decimal(text: str) -> float | None:
    """The non-negative decimal ``text`` spells in ASCII digits, with an optional fraction
    (surrounding whitespace allowed), or ``None``. A value too large for a float reads as
    ``inf``, never as garbage."""
    text = text.strip(" \t")
    if not _DECIMAL.fullmatch(text):
        return None
    try:
        return float(text)
    except OverflowError:  # pragma: no cover - float() of a digit string returns inf instead
        return float("inf")
