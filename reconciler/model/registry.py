"""Where content comes from: how to reach one upstream registry, as repos.yaml declares
it and as the registry client takes it (one type for both)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RegistryConfig:
    """How to reach one upstream registry: a ``registries:`` entry of repos.yaml (or a feed
    URL written in place), and what the registry client is made from. Secrets are never
    stored here: only the names of environment variables or the path of a docker/podman
    ``auth.json``."""

    url: str
    username_env: str | None = None
    password_env: str | None = None
    auth_file: str | None = None
    tls_verify: bool = True
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    max_concurrency: int = 16
    #: seconds to wait for the next bytes of a response (a stalled body or an unanswered
    #: request), then fail the attempt as temporary
    timeout: float = 60.0
    #: how often a temporary failure (connection reset, stall, 408/429/5xx) is retried
    retries: int = 4
    #: the ``registries:`` key it was declared under (a feed URL or ``bundle:PATH`` written
    #: in place: that text); a label for messages, not part of how to reach the registry,
    #: so two names for one registry compare equal and share one client
    name: str = field(default="", compare=False)


def registry_key(url: str) -> str:
    """The registry a URL names, as push records key it: ``harbor.example.com/`` and
    ``https://harbor.example.com`` are one registry (``https://`` unless it says
    ``http://``; no trailing ``/`` or ``/v2``; no ``user:password@``)."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "https://" + url
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    host = host.rsplit("@", 1)[-1].lower()
    path = path.rstrip("/").removesuffix("v2").rstrip("/")
    return f"{scheme.lower()}://{host}" + (f"/{path}" if path else "")
