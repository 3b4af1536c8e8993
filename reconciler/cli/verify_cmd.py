"""``reconciler verify REPO [TAG...] --key FILE [--json]``: check the cosign signatures of
a repository's images against public keys (``ops.verify``)."""

from __future__ import annotations

import click

from reconciler.cli.context import AppContext, echo_json, pass_app


@click.command("verify")
@click.argument("repo_id")
@click.argument("tags", nargs=-1)
@click.option("--key", "keys", multiple=True, required=True, metavar="FILE",
              help="A PEM public key (cosign.pub: ECDSA, RSA or Ed25519); repeat for several. A tag passes "
                   "when one of them verifies a signature of its image.")
@click.option("--version", "number", type=int, default=None,
              help="Check this version (default: the published one, else the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per tag in a list.")
@pass_app
def verify_cmd(app: AppContext, repo_id: str, tags: tuple[str, ...], keys: tuple[str, ...], number: int | None,
               as_json: bool) -> None:
    """Check that each TAG of REPO (default: every tag but signatures' own) points to an
    image with a cosign signature one of the keys verifies.

    Signatures are found under cosign's tag sha256-<hex>.sig and among the image's OCI
    1.1 referrers in the same version; an index passes when it, or every child, is
    signed. The signed payload must name the image's digest. Keyless (Fulcio/Rekor)
    signatures are not checked. Exit 0 when every tag passes, 1 otherwise.

    \b
    Example:
      reconciler verify prod/app v2 --key keys/release.pub
    """
    from reconciler.ops.verify import load_keys, verify_tags

    store = app.store
    repo = store.repository_get(repo_id)
    loaded = load_keys(keys)
    if number is None:
        number = repo.published_version if repo.published_version is not None else repo.latest_version
    verdicts = verify_tags(store, store.version_get(repo_id, number), loaded, list(tags) or None)
    if as_json:
        echo_json([v.to_json() for v in verdicts])
    else:
        for v in verdicts:
            click.echo(f"{'ok  ' if v.ok else 'FAIL'}  {v.tag}   {v.digest.short() if v.digest else '-'}   {v.reason}")
        failed = sum(1 for v in verdicts if not v.ok)
        click.echo(f"{repo_id} version {number}: {len(verdicts) - failed} of {len(verdicts)} tags verified",
                   err=failed > 0)
    if any(not v.ok for v in verdicts) or not verdicts:
        raise click.exceptions.Exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(verify_cmd)
