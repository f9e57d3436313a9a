"""How the library names a callable it was given (a key function, a predicate, a delay)."""

from __future__ import annotations

__all__ = ["callable_name"]


def callable_name(fn: object) -> str:
    """``fn``'s qualified name, else the name of its class: never its ``repr``.

    A ``functools.partial`` or a callable object may show in its ``repr`` the arguments it
    holds (an API key, a token), and what this names ends up in ``describe()``, events and logs.
    """
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) and name else type(fn).__name__
