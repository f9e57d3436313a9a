"""A policy's options: one frozen dataclass, checked by one set of rules, read two ways.

Each plain field carries a :class:`~._validate.Rule` (see :func:`option`); rules between fields
are :meth:`Options._cross_checks`. A policy's keyword constructor builds its options and raises
``ValueError`` for the first problem (``CircuitBreaker: window must be 'time' or 'count', got
'x'``); a profile builds the same options and reports every problem under the key it was found
at (``profiles.p.circuit_breaker.window: expected one of 'time', 'count', got 'x'``). Where the
two phrasings differ, the rule gives both (a :class:`Problem`, or ``says=`` rules on a field).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, field, fields, is_dataclass
from typing import Any, NamedTuple, TypeVar

from .._validate import Rule
from ..errors import ConfigError

_O = TypeVar("_O", bound="Options")


def option(
    rule: Rule, default: Any = MISSING, *, optional: bool = False, says: Sequence[Rule] = ()
) -> Any:
    """A dataclass field whose value ``rule`` validates (``None`` allowed if ``optional``).

    ``says``: the rules a policy's constructor words its refusal with, tried in order, when
    they differ from ``rule`` (``"must be greater than 0"`` for a ratio of 0, say)."""
    metadata = {"rule": rule, "optional": optional, "says": tuple(says)}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


class Problem(NamedTuple):
    """A broken rule between fields: ``text`` as a profile reports it under ``field``, and
    ``said`` as a policy's constructor words it after its name (``text`` when ``None``)."""

    field: str
    text: str
    said: str | None = None

    @classmethod
    def bound(cls, field: str, problem: str) -> Problem:
        """A value past what a policy can derive from it (``problem`` from
        :func:`~._validate.too_small` or :func:`~._validate.not_finite`)."""
        return cls(field, f"expected {problem}", f"must be {problem}")


class _Problems(ConfigError):
    """Problems of one options object, each as ``(key, message)``: the loader places them
    under the key path they were found at."""

    def __init__(self, owner: str, items: list[tuple[str, str]]) -> None:
        self.items = items
        super().__init__([_at(owner, key, message) for key, message in items])


def _at(path: str, key: str, message: str) -> str:
    where = f"{path}.{key}" if key and path else (key or path)
    return f"{where}: {message}"


class Options:
    """Validation shared by every options class: each field's rule, all problems at once."""

    def __post_init__(self) -> None:
        items = self._problems()
        if items:
            raise _Problems(type(self).__name__, items)

    def _problems(self) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            rule: Rule | None = f.metadata.get("rule")
            if rule is not None:
                if value is None and f.metadata.get("optional"):
                    continue
                if not rule.accepts(value):
                    items.append((f.name, f"expected {rule.expected}, got {rule.show(value)}"))
            elif value is not None and not isinstance(value, Options):
                expected = _options_class(_field_types(type(self))[f.name])
                name = expected.__name__ if expected else "options"
                items.append((f.name, f"expected {name} or None, got {value!r}"))
        if not items:
            items.extend((p[0], p[1]) for p in self._cross_checks())
        return items

    def _cross_checks(self) -> list[Problem] | list[tuple[str, str]]:
        """The rules between fields, judged once every field has passed its own rule."""
        return []

    @classmethod
    def _of_arguments(cls: type[_O], owner: str, arguments: Mapping[str, Any]) -> _O:
        """The options among a policy constructor's ``arguments`` (its ``locals()``: each
        field is the keyword of the same name), converted (``1`` -> ``1.0`` for a number of
        seconds); ``ValueError`` for the first problem, worded for ``owner``."""
        values = {f.name: arguments[f.name] for f in fields(cls) if f.name in arguments}  # type: ignore[arg-type]
        converted = dict(values)
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in values:
                continue
            value = values[f.name]
            rule: Rule | None = f.metadata.get("rule")
            if rule is None or (value is None and f.metadata.get("optional")):
                continue
            for said in (*f.metadata.get("says", ()), rule):
                said(owner, f.name, value)  # raises ValueError, worded for a constructor
            converted[f.name] = rule.convert(value)
        # The rules between fields see the values as given: their messages show them so.
        shadow: Any = object.__new__(cls)
        for f in fields(cls):  # type: ignore[arg-type]
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            object.__setattr__(shadow, f.name, values.get(f.name, default))
        for problem in shadow._cross_checks():
            key, text, said = Problem(*problem)
            raise ValueError(f"{owner}: {key} {text if said is None else said}")
        return cls(**converted)

    def _keep(self, policy: object) -> None:
        """Set each field on ``policy`` as ``_<field>``: the policy reads them on every call,
        as its own attributes rather than through the options."""
        for f in fields(self):  # type: ignore[arg-type]
            object.__setattr__(policy, f"_{f.name}", getattr(self, f.name))

    def _arguments(self, cls: type[Options]) -> dict[str, Any]:
        """The fields of ``cls`` (a policy's options this class extends), as keywords."""
        return {f.name: getattr(self, f.name) for f in fields(cls)}  # type: ignore[arg-type]


def vars_of(options: Options) -> dict[str, Any]:
    """The fields of ``options`` and their values, in order (for ``describe()``)."""
    return {f.name: getattr(options, f.name) for f in fields(options)}  # type: ignore[arg-type]


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
