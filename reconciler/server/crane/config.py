"""Read a ``crane.conf`` (INI) file into a ``CraneConfig``.

The keys and defaults of Crane's ``default_config.conf`` (docs/original-system.md,
"crane.conf"):

``[general]`` ``debug`` (bool, false), ``data_dir`` (``/var/lib/crane/metadata/``),
``data_dir_polling_interval`` (seconds, 60), ``endpoint`` (``host[:port]`` for the v1
``X-Docker-Endpoints`` header; empty = the request's Host).

``[serve_content]`` ``enable`` (false), ``content_dir_v1`` (``/var/www/pub/docker/v1/web/``),
``content_dir_v2`` (``/var/www/pub/docker/v2/web/``), ``use_x_sendfile`` (accepted and
ignored: gunicorn sends files with ``sendfile`` itself).

``[cdn]`` ``url_match`` + ``url_replace``: a substring replacement on v2 redirect URLs;
``url_auth_secret`` (even-length hex; an invalid one is logged and ignored, as Crane
did), ``url_auth_param`` (``_auth_``), ``url_auth_ttl`` (300), ``url_auth_algo``
(``sha256``, ``sha1`` or ``md5``): an Akamai-style token appended to every v2 redirect.

Sections Crane had that we do not implement (``[gsa]``, ``[solr]``) are logged as
ignored. Unlike Crane, a bad value is an error naming the
file, section and key, not a traceback; and ``serve_content`` enabled with a missing
content directory is an error at startup instead of being silently disabled.
"""

from __future__ import annotations

import configparser
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.errors import CraneDataInvalid

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = "/var/lib/crane/metadata/"
DEFAULT_INTERVAL = 60
_BOOLEANS = {"1": True, "yes": True, "true": True, "on": True, "0": False, "no": False, "false": False, "off": False}
_KNOWN = {
    "general": {"debug", "data_dir", "data_dir_polling_interval", "endpoint"},
    "serve_content": {"enable", "content_dir_v1", "content_dir_v2", "use_x_sendfile"},
    "cdn": {"url_match", "url_replace", "url_auth_secret", "url_auth_param", "url_auth_ttl", "url_auth_algo"},
}
AUTH_ALGORITHMS = ("sha256", "sha1", "md5")


@dataclass(frozen=True)
class CraneConfig:
    data_dir: str = DEFAULT_DATA_DIR
    polling_interval: float = DEFAULT_INTERVAL
    endpoint: str | None = None
    debug: bool = False
    serve_content: bool = False
    content_dir_v1: str = "/var/www/pub/docker/v1/web/"
    content_dir_v2: str = "/var/www/pub/docker/v2/web/"
    url_match: str | None = None
    url_replace: str | None = None
    url_auth_secret: str | None = None   # hex
    url_auth_param: str = "_auth_"
    url_auth_ttl: int = 300
    url_auth_algo: str = "sha256"

    def with_overrides(self, *, data_dir: str | None = None, polling_interval: float | None = None) -> CraneConfig:
        """Command-line options win over the file."""
        out = self
        if data_dir is not None:
            out = replace(out, data_dir=data_dir)
        if polling_interval is not None:
            out = replace(out, polling_interval=polling_interval)
        return out

    def check(self) -> None:
        """Startup checks: the directories this configuration needs exist."""
        if not os.path.isdir(self.data_dir):
            raise CraneDataInvalid(f"crane data directory {self.data_dir} does not exist",
                                   hint="point --crane-data-dir (or [general] data_dir) at the directory "
                                        "holding the app files (*.json)")
        if self.serve_content:
            for key, path in (("content_dir_v1", self.content_dir_v1), ("content_dir_v2", self.content_dir_v2)):
                if not os.path.isdir(path):
                    raise CraneDataInvalid(f"[serve_content] {key} = {path}: no such directory",
                                           hint="create it, fix the path, or set [serve_content] enable = false")


def read_config(path: str | Path) -> CraneConfig:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as exc:
        raise CraneDataInvalid(f"{path}: cannot read crane config: {exc.strerror}") from exc
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise CraneDataInvalid(f"{path}: not a valid INI file: {exc}".replace("\n", " "),
                               hint="crane.conf is INI: [general] then key: value lines") from exc
    for section in parser.sections():
        known = _KNOWN.get(section)
        if known is None:
            log.warning("%s: section [%s] is not supported by reconciler's Crane mode; ignored", path, section)
            continue
        for key in parser[section]:
            if key not in known:
                raise CraneDataInvalid(f"{path}: [{section}] unknown key {key!r}",
                                       hint=f"[{section}] takes {', '.join(sorted(known))}")

    def get(section: str, key: str) -> str | None:
        value = parser.get(section, key, fallback=None)
        return value.strip() if value is not None and value.strip() else None

    def boolean(section: str, key: str, default: bool) -> bool:
        value = get(section, key)
        if value is None:
            return default
        if value.lower() not in _BOOLEANS:
            raise CraneDataInvalid(f"{path}: [{section}] {key} = {value!r} is not a boolean",
                                   hint="use true or false")
        return _BOOLEANS[value.lower()]

    def seconds(section: str, key: str, default: int) -> int:
        text = get(section, key)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise CraneDataInvalid(f"{path}: [{section}] {key} = {text!r} is not a whole number of seconds",
                                   hint=f"e.g. {key}: {default}")
        return value

    secret = get("cdn", "url_auth_secret")
    if secret is not None and (len(secret) % 2 or not all(c in "0123456789abcdefABCDEF" for c in secret)):
        log.error("%s: [cdn] url_auth_secret is not an even-length hex string; CDN auth tokens disabled", path)
        secret = None
    algo = (get("cdn", "url_auth_algo") or "sha256").lower()
    if algo not in AUTH_ALGORITHMS:
        raise CraneDataInvalid(f"{path}: [cdn] url_auth_algo = {algo!r} is not supported",
                               hint=f"use one of {', '.join(AUTH_ALGORITHMS)}")
    url_match, url_replace = get("cdn", "url_match"), get("cdn", "url_replace")
    if (url_match is None) != (url_replace is None):
        raise CraneDataInvalid(f"{path}: [cdn] needs both url_match and url_replace")
    defaults = CraneConfig()
    return CraneConfig(
        data_dir=get("general", "data_dir") or defaults.data_dir,
        polling_interval=seconds("general", "data_dir_polling_interval", DEFAULT_INTERVAL),
        endpoint=get("general", "endpoint"),
        debug=boolean("general", "debug", False),
        serve_content=boolean("serve_content", "enable", False),
        content_dir_v1=get("serve_content", "content_dir_v1") or defaults.content_dir_v1,
        content_dir_v2=get("serve_content", "content_dir_v2") or defaults.content_dir_v2,
        url_match=url_match,
        url_replace=url_replace,
        url_auth_secret=secret,
        url_auth_param=get("cdn", "url_auth_param") or defaults.url_auth_param,
        url_auth_ttl=seconds("cdn", "url_auth_ttl", defaults.url_auth_ttl),
        url_auth_algo=algo,
    )
