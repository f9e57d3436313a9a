"""What every options class of a profile shares: a check per field, all problems at once.

An options class is a frozen dataclass whose plain fields each carry a :class:`Check` (see
:func:`_check`) and whose nested fields hold another options class (or ``None``: the policy is
off). Building one validates it; the loader reads the same checks to report problems under the
key path they were found at.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from dataclasses import MISSING, field, fields, is_dataclass
from typing import Any

from ..errors import ConfigError
from ..policies._validate import Check


def _check(check: Check, default: Any = MISSING, *, optional: bool = False) -> Any:
    """A dataclass field whose value ``check`` validates (``None`` allowed if ``optional``)."""
    metadata = {"check": check, "optional": optional}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


class _Problems(ConfigError):
    """Problems of one options object, each as ``(key, message)``: the loader places them
    under the key path they were found at."""

    def __init__(self, owner: str, items: list[tuple[str, str]]) -> None:
        self.items = items
        super().__init__([_at(owner, key, message) for key, message in items])


def _at(path: str, key: str, message: str) -> str:
    where = f"{path}.{key}" if key and path else (key or path)
    return f"{where}: {message}"


class _Options:
    """Validation shared by every options class: each field's check, all problems at once."""

    def __post_init__(self) -> None:
        items = self._problems()
        if items:
            raise _Problems(type(self).__name__, items)

    def _problems(self) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            check: Check | None = f.metadata.get("check")
            if check is not None:
                if value is None and f.metadata.get("optional"):
                    continue
                if not check.accepts(value):
                    items.append((f.name, f"expected {check.expected}, got {check.show(value)}"))
            elif value is not None and not isinstance(value, _Options):
                expected = _options_class(_field_types(type(self))[f.name])
                name = expected.__name__ if expected else "options"
                items.append((f.name, f"expected {name} or None, got {value!r}"))
        if not items:
            items.extend(self._cross_checks())
        return items

    def _cross_checks(self) -> list[tuple[str, str]]:
        return []


def _options_class(annotation: Any) -> type | None:
    """The options dataclass a field holds (``RetryOptions | None`` → ``RetryOptions``)."""
    for candidate in typing.get_args(annotation) or (annotation,):
        if isinstance(candidate, type) and is_dataclass(candidate):
            return candidate
    return None


_HINTS: dict[type, dict[str, Any]] = {}


def _field_types(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _unknown(key: Any, known: Iterable[str], where: str) -> str:
    if not isinstance(key, str):
        return f"{where}: unknown key (keys are strings, got {key!r})"
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where}: unknown key{hint}"
