"""``reconciler export``: a repository version as a Crane static tree or an OCI layout tar,
or (``--all`` / ``--repository``) a bundle of the store's published content for an air
gap; ``reconciler bundle verify`` checks a bundle on the far side."""

from __future__ import annotations

import click

from reconciler.cli.context import AppContext, echo_json, human_bytes, pass_app
from reconciler.errors import InvalidInput
from reconciler.ops import export as export_ops


@click.command("export")
@click.argument("repo_id", required=False)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Tar file to write.")
@click.option("--format", "fmt", type=click.Choice(export_ops.FORMATS), default=None,
              help="crane (default): app file v4 + static tree; oci: OCI image layout; "
                   "crane-v1: v1 app file + web/<image_id>/{ancestry,json,layer}.")
@click.option("--version", "version", type=int, default=None,
              help="Version to export (default: the published one, else the latest).")
@click.option("--url", default=None, help="Crane redirect base URL (default https://HOST/pulp/docker/v2/REPO_ID/, v1 for crane-v1).")
@click.option("--convert-docker", is_flag=True,
              help="With --format oci: write Docker schema2 manifests and lists in OCI form (new digests, "
                   "schema1 left out), for readers that take only OCI media types from a layout (skopeo 1.9). "
                   "Default: exact bytes and digests.")
@click.option("--all", "all_repos", is_flag=True,
              help="Write a bundle of every repository's published content (docs/air-gap.md).")
@click.option("--repository", "repositories", multiple=True, metavar="ID",
              help="Write a bundle of these repositories (repeatable).")
@click.option("--since", type=click.Path(exists=True), default=None,
              help="With a bundle: a delta that carries only what this earlier bundle did not.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def export_cmd(app: AppContext, repo_id: str | None, output: str, fmt: str | None, version: int | None,
               url: str | None, convert_docker: bool, all_repos: bool, repositories: tuple[str, ...],
               since: str | None, as_json: bool) -> None:
    """Write a repository version to a tar for static hosting or air-gapped transfer, or
    the whole store's published content as a bundle.

    \b
    Examples:
      reconciler export synctest -o synctest.tar --url https://cdn.example.com/v2/synctest/
      reconciler export synctest -o synctest-oci.tar --format oci
      reconciler export synctest -o for-skopeo-1.9.tar --format oci --convert-docker
      reconciler export busybox -o busybox.tar --format crane-v1
      reconciler export --all -o bundle-2024-06-01.tar
      reconciler export --all -o bundle-2024-06-08.tar --since bundle-2024-06-01.tar
      skopeo copy oci-archive:synctest-oci.tar:latest dir:/tmp/busybox
    """
    if all_repos or repositories:
        if repo_id or fmt or version is not None or url or convert_docker:
            raise InvalidInput("a bundle (--all / --repository) takes no REPO_ID, --format, --version, --url or "
                               "--convert-docker", hint="reconciler export --all -o bundle.tar [--since OLD.tar]")
        if all_repos and repositories:
            raise InvalidInput("give --all or --repository, not both")
        from reconciler.bundle.writer import write_bundle

        bundle = write_bundle(app.existing_store, output, repo_ids=repositories or None, since=since)
        if as_json:
            echo_json(bundle.to_json())
            return
        delta = f", a delta against {bundle.base[:19]}" if bundle.base else ""
        click.echo(f"bundle {bundle.digest[:19]}: {bundle.repositories} repositories, {bundle.tags} tags; carries "
                   f"{bundle.blobs} blobs and {bundle.manifests} manifests, {human_bytes(bundle.bytes)}{delta} "
                   f"-> {bundle.path}")
        return
    if repo_id is None:
        raise InvalidInput("export needs a REPO_ID, or --all / --repository for a bundle",
                           hint="reconciler export REPO_ID -o FILE, or reconciler export --all -o bundle.tar")
    if since:
        raise InvalidInput("--since applies to a bundle (--all / --repository)")
    result = export_ops.export(app.existing_store, repo_id, output, format=fmt or "crane", version=version, url=url,
                               convert_docker=convert_docker)
    if as_json:
        echo_json(result.to_json())
        return
    if result.format == "crane-v1":
        click.echo(f"exported {result.repo_id} version {result.version} (crane-v1): {result.v1_images} v1 images, "
                   f"{result.tags} v1 tags, {human_bytes(result.bytes)} -> {result.path}")
        return
    click.echo(f"exported {result.repo_id} version {result.version} ({result.format}): {result.tags} tags, "
               f"{result.manifests} manifests, {result.blobs} blobs, {human_bytes(result.bytes)} -> {result.path}")


@click.group("bundle")
def bundle_group() -> None:
    """Bundles of published content for an air gap (made by `reconciler export --all`)."""


@bundle_group.command("verify")
@click.argument("path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify_cmd(path: str, as_json: bool) -> None:
    """Check a bundle (or a folder of bundles) completely: its manifest against its
    checksum, and every blob and manifest it carries against its digest. Exits 1 naming
    each problem. Needs no store.

    \b
    Example:
      reconciler bundle verify /media/transfer/bundle-2024-06-08.tar
    """
    from reconciler.bundle.verify import verify_bundles

    reports = verify_bundles(path)
    if as_json:
        echo_json([r.to_json() for r in reports])
    else:
        for r in reports:
            for problem in r.problems:
                click.echo(f"{r.path}: {problem}")
            kind = f"a delta against {r.base[:19]}" if r.base else "a full bundle"
            status = "ok" if not r.problems else f"{len(r.problems)} problem(s)"
            click.echo(f"{r.path}: bundle {r.digest[:19]} ({kind}, made {r.created}): {r.repositories} "
                       f"repositories, {r.tags} tags, {r.checked} files checked: {status}")
    if any(r.problems for r in reports):
        raise click.exceptions.Exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(export_cmd)
    cli.add_command(bundle_group)
