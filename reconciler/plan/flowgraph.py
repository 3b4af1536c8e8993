"""The flow of content as a graph: upstream feeds and upload files -> repositories ->
copies and pins -> publish names; rendered as Mermaid (GitHub and GitLab draw it in a
comment) or Graphviz DOT.

``from_desired`` is the whole flow of a repos.yaml (``reconciler graph``);
``from_plan`` is the part a plan changes, its changed edges marked (the Markdown plan).
Push targets will join as sinks when repos.yaml can declare them; today a publish name
is where content leaves. Pure: no store, no network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconciler.desired.model import ALL, DesiredState
from reconciler.plan.actions import (
    Change,
    CopyContent,
    CopyReferrers,
    CopyTag,
    DeleteRepository,
    PinTag,
    Publish,
    SyncTag,
    Unpublish,
    Upload,
    V1Sync,
    V1Upload,
)
from reconciler.plan.model import Plan

FEED, FILE, REPO, NAME = "feed", "file", "repo", "name"


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str
    #: "" unchanged, else the change symbol ("+", "~", "-")
    change: str = ""


@dataclass
class Flow:
    #: node key -> (kind, label), in insertion order
    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], Edge] = field(default_factory=dict)

    def node(self, kind: str, label: str) -> str:
        key = f"{kind}:{label}"
        self.nodes.setdefault(key, (kind, label))
        return key

    def edge(self, src: str, dst: str, label: str, change: str = "") -> None:
        key = (src, dst, label)
        old = self.edges.get(key)
        if old is None or (change and not old.change):
            self.edges[key] = Edge(src, dst, label, change)


def _names(selection: tuple[str, ...] | str, what: str) -> str:
    if selection == ALL:
        return f"all {what}"
    items = list(selection)
    shown = ", ".join(items[:3]) + (f" +{len(items) - 3}" if len(items) > 3 else "")
    return f"{what} {shown}"


def from_desired(desired: DesiredState) -> Flow:
    flow = Flow()
    base = Path(desired.path).resolve().parent
    for spec in desired.repositories.values():
        repo = flow.node(REPO, spec.id)
        if spec.feed is not None and spec.upstream_name:
            feed = flow.node(FEED, f"{spec.feed.name}: {spec.upstream_name}")
            flow.edge(feed, repo, "sync" + (" (mirror)" if spec.mirror else ""))
        for upload in spec.uploads:
            try:
                shown = upload.file.relative_to(base).as_posix()
            except ValueError:
                shown = upload.file.as_posix()
            flow.edge(flow.node(FILE, shown), repo, "upload" + (" v1" if upload.v1 else ""))
        for copy in spec.copies:
            parts = [_names(s, w) for s, w in ((copy.tags, "tags"), (copy.manifests, "manifests"),
                                                 (copy.indexes, "indexes")) if s]
            flow.edge(flow.node(REPO, copy.from_repo), repo, "copy " + "; ".join(parts))
        for pin in spec.pins:
            if pin.source_repo:
                flow.edge(flow.node(REPO, pin.source_repo), repo, f"pin {pin.name}={pin.source_tag}")
        if spec.publish:
            flow.edge(repo, flow.node(NAME, spec.publish), "publish" + (" (protected)" if spec.protected else ""))
    return flow


def from_plan(plan: Plan) -> Flow:
    """The repositories a plan changes, their feeds, sources and publish names; the edges
    the plan's actions change carry the change symbol."""
    flow = Flow()
    for summary in plan.repositories:
        actions = plan.actions_for(summary.id)
        if not actions:
            continue
        repo = flow.node(REPO, summary.id)
        if summary.label:
            syncs = [a for a in actions if isinstance(a, (SyncTag, V1Sync))]
            changes = {a.change.value for a in syncs}
            sign = "" if not syncs else ("~" if len(changes) > 1 else changes.pop())
            flow.edge(flow.node(FEED, summary.label), repo, "sync", sign)
        for a in actions:
            if isinstance(a, (CopyTag, CopyContent, CopyReferrers, PinTag)) and a.source_repo:
                what = "pin " + a.tag if isinstance(a, PinTag) else "copy"
                flow.edge(flow.node(REPO, a.source_repo), repo, what, a.change.value)
            elif isinstance(a, (Upload, V1Upload)) and a.file:
                flow.edge(flow.node(FILE, Path(a.file).name), repo, "upload", a.change.value)
            elif isinstance(a, (Publish, Unpublish)) and a.publish_name:
                flow.edge(repo, flow.node(NAME, a.publish_name), "publish",
                          Change.DELETE.value if isinstance(a, Unpublish) else a.change.value)
            elif isinstance(a, DeleteRepository):
                flow.edge(repo, repo, "delete repository", Change.DELETE.value)
        if summary.publish_name and not any(isinstance(a, (Publish, Unpublish)) for a in actions):
            flow.edge(repo, flow.node(NAME, summary.publish_name), "publish")
    return flow


# -- renderers -----------------------------------------------------------------------------

def _mermaid_text(text: str) -> str:
    # Mermaid's entity codes keep quotes and pipes from ending a label
    return text.replace("#", "#35;").replace('"', "#quot;").replace("|", "#124;").replace("<", "#lt;") \
        .replace(">", "#gt;")


_MERMAID_SHAPES = {FEED: ('[("', '")]'), FILE: ('[/"', '"/]'), REPO: ('["', '"]'), NAME: ('(["', '"])')}


def mermaid(flow: Flow) -> str:
    ids = {key: f"n{i}" for i, key in enumerate(flow.nodes)}
    lines = ["flowchart LR"]
    for key, (kind, label) in flow.nodes.items():
        left, right = _MERMAID_SHAPES[kind]
        lines.append(f"  {ids[key]}{left}{_mermaid_text(label)}{right}")
    changed: list[int] = []
    for i, e in enumerate(flow.edges.values()):
        label = _mermaid_text(f"{e.change} {e.label}" if e.change else e.label)
        arrow = "==>" if e.change else "-->"
        lines.append(f"  {ids[e.src]} {arrow}|{label}| {ids[e.dst]}")
        if e.change:
            changed.append(i)
    if changed:
        lines.append(f"  linkStyle {','.join(map(str, changed))} stroke:#d97706,stroke-width:3px")
    return "\n".join(lines) + "\n"


_DOT_SHAPES = {FEED: "cylinder", FILE: "note", REPO: "box", NAME: "ellipse"}


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(flow: Flow) -> str:
    ids = {key: f"n{i}" for i, key in enumerate(flow.nodes)}
    lines = ["digraph reconciler {", "  rankdir=LR;", '  node [fontname="sans-serif"];']
    for key, (kind, label) in flow.nodes.items():
        lines.append(f"  {ids[key]} [label={_dot_text(label)}, shape={_DOT_SHAPES[kind]}];")
    for e in flow.edges.values():
        label = f"{e.change} {e.label}" if e.change else e.label
        style = ", style=bold, color=darkorange" if e.change else ""
        lines.append(f"  {ids[e.src]} -> {ids[e.dst]} [label={_dot_text(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
