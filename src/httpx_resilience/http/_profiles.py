"""The ``profiles=`` a client or transport is given, as a :class:`~httpx_resilience.Registry`
(one :class:`~httpx_resilience.Profile` is a registry whose default profile it is).

Only the client and the transport (through this) turn the path of a TOML file into a registry:
the dispatch below them routes through any :class:`~._routing.Routing` and never imports the
profiles package.
"""

from __future__ import annotations

import os

from ..profiles import DEFAULT_PROFILE, Profile, Registry

__all__ = ["registry_of"]


def registry_of(
    owner: str, pipeline: object, profiles: Registry | Profile | str | os.PathLike[str] | None
) -> Registry | None:
    """``profiles`` as a registry (read from its file when it is a path; one profile used for
    every request when it is a :class:`~httpx_resilience.Profile`), or ``None``.

    ``TypeError`` when both a pipeline and profiles are given (before any file is read), or
    when ``profiles`` is neither a registry, a profile nor a path.
    """
    if pipeline is not None and profiles is not None:
        raise TypeError(f"{owner}: give a pipeline or profiles, not both")
    if isinstance(profiles, (str, os.PathLike)):
        return Registry.from_toml(profiles)
    if isinstance(profiles, Profile):
        # Not a pipeline built here: a profile says more than its pipeline (which POSTs retry).
        return Registry({DEFAULT_PROFILE: profiles})
    if profiles is not None and not isinstance(profiles, Registry):
        raise TypeError(
            f"{owner}: profiles must be a Registry, a Profile or the path of a TOML file, "
            f"got {profiles!r}"
        )
    return profiles
