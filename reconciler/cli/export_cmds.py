"""``reconciler export``: a repository version as a Crane static tree or an OCI layout tar."""

from __future__ import annotations

import click

from reconciler.cli.context import AppContext, echo_json, human_bytes, pass_app
from reconciler.ops import export as export_ops


@click.command("export")
@click.argument("repo_id")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Tar file to write.")
@click.option("--format", "fmt", type=click.Choice(export_ops.FORMATS), default="crane", show_default=True,
              help="crane: app file v4 + static tree; oci: OCI image layout; "
                   "crane-v1: v1 app file + web/<image_id>/{ancestry,json,layer}.")
@click.option("--version", "version", type=int, default=None,
              help="Version to export (default: the published one, else the latest).")
@click.option("--url", default=None, help="Crane redirect base URL (default https://HOST/pulp/docker/v2/REPO_ID/, v1 for crane-v1).")
@click.option("--convert-docker", is_flag=True,
              help="With --format oci: write Docker schema2 manifests and lists in OCI form (new digests, "
                   "schema1 left out), for readers that take only OCI media types from a layout (skopeo 1.9). "
                   "Default: exact bytes and digests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def export_cmd(app: AppContext, repo_id: str, output: str, fmt: str, version: int | None, url: str | None,
               convert_docker: bool, as_json: bool) -> None:
    """Write a repository version to a tar for static hosting or air-gapped transfer.

    \b
    Examples:
      reconciler export synctest -o synctest.tar --url https://cdn.example.com/v2/synctest/
      reconciler export synctest -o synctest-oci.tar --format oci
      reconciler export synctest -o for-skopeo-1.9.tar --format oci --convert-docker
      reconciler export busybox -o busybox.tar --format crane-v1
      skopeo copy oci-archive:synctest-oci.tar:latest dir:/tmp/busybox
    """
    result = export_ops.export(app.store, repo_id, output, format=fmt, version=version, url=url,
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


def register(cli: click.Group) -> None:
    cli.add_command(export_cmd)
