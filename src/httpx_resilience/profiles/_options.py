"""What every options class of a profile shares (defined with the policies' options, in
``policies/_options.py``), and the message for an unknown key.

An options class is a frozen dataclass whose plain fields each carry a :class:`Rule` (see
:func:`_field`) and whose nested fields hold another options class (or ``None``: the policy is
off). Building one validates it; the loader reads the same rules to report problems under the
key path they were found at.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from ..policies._options import _HINTS as _HINTS
from ..policies._options import Options, option
from ..policies._options import _at as _at
from ..policies._options import _field_types as _field_types
from ..policies._options import _options_class as _options_class
from ..policies._options import _Problems as _Problems

_Options = Options
_field = option


def _unknown(key: Any, known: Iterable[str], where: str) -> str:
    if not isinstance(key, str):
        return f"{where}: unknown key (keys are strings, got {key!r})"
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where}: unknown key{hint}"
