"""The environment a sandboxed command gets: an allow-list of the host's, never the rest (tokens, keys)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Locale, terminal and identity only: nothing here is a secret, and everything else might be.
ENV_ALLOWLIST: frozenset[str] = frozenset({
    "PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_COLLATE", "LC_NUMERIC", "LC_TIME",
    "TERM", "COLORTERM", "NO_COLOR", "TZ", "USER", "LOGNAME",
})


def sandbox_env(
    host: Mapping[str, str],
    *,
    base: frozenset[str] = ENV_ALLOWLIST,
    allow: Iterable[str] = (),
    fixed: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Allowed host variables (`base` and `allow`), then the backend's `fixed` ones, then the caller's."""
    allowed = base | set(allow)
    env = {name: value for name, value in host.items() if name in allowed}
    env.update(fixed or {})
    env.update(overrides or {})
    return env
