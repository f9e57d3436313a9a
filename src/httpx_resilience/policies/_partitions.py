"""Per-key state for partitioned policies, in a bounded cache.

A policy built with ``key=`` keeps one state (a breaker circuit, a bulkhead, a bucket) per
partition name. The states live in a :class:`cachetools.LRUCache` of ``max_partitions`` entries,
so a flood of distinct keys (one per user, say) cannot grow memory without bound. A state that
falls out of the cache while calls still hold it is not lost: it stays reachable through a weak
reference until the last call lets go, and comes back into the cache if its key is seen again.

The owner may say which states must be kept (``keep=``: an open circuit, whose break would be
forgotten and its failing host hit again). When the cache is full, the least recently used
state that need not be kept goes; if every state must be kept, the least recently used goes
anyway, so the bound holds whatever happens.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import cachetools

from .._names import callable_name
from .._validate import at_least
from ..outcome import predicate_text
from ._options import Options, vars_of

S = TypeVar("S")

#: Default bound on the number of partitions a policy keeps.
DEFAULT_MAX_PARTITIONS = 10_000

# Entries an eviction looks at, at most, for one that need not be kept.
_SCAN = 64


class _KeepingLRUCache(cachetools.LRUCache[str, S]):
    """An LRU cache that, when full, evicts the least recently used entry that ``keep`` does
    not hold on to.

    It looks at the ``_SCAN`` least recently used entries at most, so that making room stays
    cheap however many entries must be kept; when all of those must be kept, the least
    recently used of them goes anyway.
    """

    def __init__(self, maxsize: int, keep: Callable[[S], bool]) -> None:
        super().__init__(maxsize)
        self._keep = keep

    def popitem(self) -> tuple[str, S]:
        # Called only to make room. Entries to keep are taken out in LRU order and put back as
        # most recently used, so that the next eviction does not look at them again first.
        kept: list[tuple[str, S]] = []
        try:
            while len(kept) < _SCAN and len(self):
                key, state = super().popitem()
                if not self._keep(state):
                    return key, state
                kept.append((key, state))
            if not kept:
                raise KeyError(f"{type(self).__name__} is empty")
            return kept.pop(0)  # all must be kept: bound memory all the same
        finally:
            for key, state in kept:
                self[key] = state


class Partitions(Generic[S]):
    """States by partition key, at most ``max_partitions`` of them cached.

    ``keep``, when given, names the states that should outlive idle ones when the cache is full
    (it is asked only when something must be evicted, never on :meth:`get`).
    """

    __slots__ = ("_alive", "_cache", "_factory")

    def __init__(
        self,
        owner: str,
        factory: Callable[[str], S],
        max_partitions: int,
        keep: Callable[[S], bool] | None = None,
    ) -> None:
        at_least(owner, "max_partitions", max_partitions, 1)
        self._factory = factory
        self._cache: cachetools.LRUCache[str, S] = (
            cachetools.LRUCache(max_partitions)
            if keep is None
            else _KeepingLRUCache(max_partitions, keep)
        )
        self._alive: weakref.WeakValueDictionary[str, S] = weakref.WeakValueDictionary()

    @property
    def max_partitions(self) -> int:
        """The most partitions kept in the cache."""
        return int(self._cache.maxsize)

    def get(self, key: str) -> S:
        """The state of ``key``, created if it has none."""
        try:
            return self._cache[key]
        except KeyError:
            pass
        state = self._alive.get(key)
        if state is None:
            state = self._factory(key)
            self._alive[key] = state
        self._cache[key] = state
        return state

    def peek(self, key: str) -> S | None:
        """The state of ``key`` if it has one, without creating it."""
        state = self._cache.get(key)
        return state if state is not None else self._alive.get(key)

    def __len__(self) -> int:
        return len(self._cache)

    def items(self) -> Iterator[tuple[str, S]]:
        """The cached partitions, least recently used first."""
        return iter(list(self._cache.items()))


# A policy without handle= (described_options leaves it out), told from handle=None.
_NO_HANDLE: Any = object()


def described_options(
    options: Options,
    key: Callable[..., str] | None,
    partitions: Partitions[Any],
    handle: object = _NO_HANDLE,
) -> dict[str, Any]:
    """A partitioned policy's options as its ``describe()`` shows them: its options class,
    its ``handle=`` predicate if it takes one (``None``: the place's default), then how it is
    partitioned."""
    named = (
        {}
        if handle is _NO_HANDLE
        else {"handle": None if handle is None else predicate_text(handle)}
    )
    return {
        **vars_of(options),
        **named,
        "key": None if key is None else callable_name(key),
        "max_partitions": partitions.max_partitions,
    }
