"""The git checkout ``reconciler watch --git URL`` reads repos.yaml from.

The ``git`` command does the work (any URL git accepts: ``https://``, ``ssh://``,
``git@host:path``, ``file://``, a local path), never prompting: a missing credential is an
error, not a hung watch. The checkout is a folder of our own (by default inside the
store), cloned once and then fetched every tick; the watched ref is checked out detached,
with untracked files removed, so what is read is exactly the commit. A clone goes to a
temporary folder first and is renamed into place, so an interrupted clone is never taken
for a checkout. URLs are shown with their password removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from reconciler.errors import GitError, redact_url

log = logging.getLogger(__name__)

#: seconds one git command may take (a stalled server must not stall the watch forever)
DEFAULT_TIMEOUT = 120.0


class GitCheckout:
    """``update()`` fetches and checks out the newest commit of ``ref`` (default: the
    remote's default branch) in ``directory`` and returns its id."""

    def __init__(self, url: str, directory: Path, *, ref: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url, self.ref, self.directory, self.timeout = url, ref, Path(directory), timeout
        self.shown_url = redact_url(url)
        self.commit: str | None = None

    @property
    def root(self) -> Path:
        return self.directory

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["GIT_TERMINAL_PROMPT"] = "0"  # never ask on a terminal nobody watches
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        return env

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        cmd = ["git", *args]
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=self._env(), capture_output=True, text=True,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} {self.shown_url}: no answer in {self.timeout:.0f} s",
                           hint="check that the git server is reachable; watch retries with backoff") from exc
        except FileNotFoundError as exc:
            raise GitError("the git command is not installed", hint="install git (apt-get install git)") from exc
        if proc.returncode != 0:
            # git prints the URL it was given, credentials included: redact before showing
            detail = proc.stderr.strip().replace(self.url, self.shown_url).splitlines()
            raise GitError(f"git {args[0]} {self.shown_url} failed: {detail[-1] if detail else proc.returncode}",
                           hint="check the URL, the ref and the credentials (git's own helpers, "
                                "GIT_SSH_COMMAND or a URL token); watch retries with backoff")
        return proc.stdout.strip()

    def _is_clone(self) -> bool:
        if not (self.directory / ".git").is_dir():
            return False
        try:
            return self._git("remote", "get-url", "origin", cwd=self.directory) == self.url
        except GitError:
            return False

    def _clone(self) -> None:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=self.directory.parent))
        try:
            self._git("clone", "--quiet", "--no-checkout", "--", self.url, str(tmp / "repo"))
            if self.directory.exists():  # another URL's clone, or a broken one: ours to replace
                shutil.rmtree(self.directory)
            (tmp / "repo").rename(self.directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("cloned %s into %s", self.shown_url, self.directory)

    def _resolve(self) -> str:
        ref = f"refs/remotes/origin/{self.ref}" if self.ref else "refs/remotes/origin/HEAD"
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=self.directory)
        except GitError:
            branches = self._git("branch", "--remotes", "--format=%(refname:lstrip=3)", cwd=self.directory)
            names = ", ".join(b for b in branches.split() if b != "HEAD") or "none"
            raise GitError(f"{self.shown_url} has no branch {self.ref or '(default)'!s}",
                           hint=f"its branches: {names}; give one with --ref") from None

    def update(self) -> str:
        """Fetch, check out the ref's newest commit (when it moved) and return its id."""
        if not self._is_clone():
            self._clone()
        else:
            self._git("fetch", "--quiet", "--prune", "origin", cwd=self.directory)
        commit = self._resolve()
        if commit != self.commit:  # also on the first update of this process: the files are ours to reset
            self._git("checkout", "--quiet", "--force", "--detach", commit, cwd=self.directory)
            self._git("clean", "--quiet", "-ffdx", cwd=self.directory)
        self.commit = commit
        return commit
