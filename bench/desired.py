"""Generated ``repos.yaml`` files: the fixture set mirrored from the upstream registry, and
the large desired states of the plan-scale section.

The repository id is the upstream name with ``/`` turned into ``-`` (ids have no ``/``);
each repository is published under its upstream name, so one load-generator script works
against the distribution registry and against ``reconciler serve`` alike.
"""

from __future__ import annotations

from pathlib import Path


def repo_id(upstream_name: str) -> str:
    return upstream_name.replace("/", "-")


def write_mirror(path: Path, upstream_url: str, upstream_names: list[str], *, publish: bool = True,
                 max_concurrency: int | None = None) -> None:
    lines = ["version: 1", "registries:", "  upstream:", f"    url: {upstream_url}"]
    lines += [f"    max_concurrency: {max_concurrency}"] if max_concurrency else []
    lines += ["repositories:"]
    for name in upstream_names:
        lines += [f"  {repo_id(name)}:", "    feed: upstream", f"    upstream_name: {name}"]
        if publish:
            lines.append(f"    publish: {name}")
    path.write_text("\n".join(lines) + "\n")


def write_scale(path: Path, upstream_url: str, repos: int, tags: int) -> None:
    """``repos`` mirrored repositories, each selecting ``tags`` tags by name."""
    tag_list = ", ".join(f"t{j}" for j in range(tags))
    with open(path, "w") as f:
        f.write(f"version: 1\nregistries:\n  upstream:\n    url: {upstream_url}\nrepositories:\n")
        for i in range(repos):
            f.write(f"  r{i:05d}:\n    feed: upstream\n    upstream_name: scale/r{i:05d}\n"
                    f"    tags: {{include: [{tag_list}]}}\n")
