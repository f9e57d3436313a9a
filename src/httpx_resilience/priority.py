"""How much a call matters when a dependency is overloaded: its :data:`Priority`.

Load shedding policies (the adaptive limiter and throttler) refuse ``"sheddable"`` work first
and ``"critical"`` work last. A call gets its priority from ``Pipeline.execute(priority=...)``,
from ``extensions={"resilience.priority": ...}`` on an HTTP request, or from
``Context.priority``; it is ``"default"`` otherwise.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["PRIORITIES", "Priority", "rank"]

#: The priority of a call, most important first.
Priority = Literal["critical", "default", "sheddable"]

#: Every :data:`Priority`, most important first.
PRIORITIES: Final[tuple[Priority, ...]] = ("critical", "default", "sheddable")

_RANKS: Final[dict[str, int]] = {name: index for index, name in enumerate(PRIORITIES)}
_BY_NAME: Final[dict[str, Priority]] = {name: name for name in PRIORITIES}


def rank(priority: Priority) -> int:
    """The priority's place in :data:`PRIORITIES`: 0 for ``"critical"``, 1 for ``"default"``,
    2 for ``"sheddable"``."""
    return _RANKS[priority]


def _checked(value: object, where: str) -> Priority:
    """``value`` as a :data:`Priority`, or the error a user sees for it, naming ``where`` it
    came from (an option or an extension)."""
    if not isinstance(value, str):
        raise TypeError(f"{where} must be one of {', '.join(map(repr, PRIORITIES))}, got {value!r}")
    priority = _BY_NAME.get(value)
    if priority is None:
        raise ValueError(
            f"{where} must be one of {', '.join(map(repr, PRIORITIES))}, got {value!r}"
        )
    return priority
