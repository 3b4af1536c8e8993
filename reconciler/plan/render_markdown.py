"""Markdown rendering of a ``Plan`` for a pull-request comment.

A summary line, a table with one row per repository, destructive actions called out in
their own list (so a reviewer cannot miss a removal), the changed part of the flow as a
Mermaid graph (GitHub and GitLab draw it; changed edges thick), then every action in a
collapsed ``diff`` block (GitHub colours ``+``/``-`` lines).
"""

from __future__ import annotations

from reconciler.plan.flowgraph import from_plan, mermaid
from reconciler.plan.model import Change, Op, Plan
from reconciler.plan.render_text import action_line, human_bytes, summary_line

#: above this many nodes the graph is left out (a reviewer cannot read it, and it would
#: crowd out the actions in a size-limited comment)
GRAPH_MAX_NODES = 60


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(plan: Plan) -> str:
    lines = ["### reconciler plan", ""]
    lines.append(f"**{summary_line(plan)}**")
    lines.append("")
    lines.append(f"Desired file `{plan.desired_path}` ({plan.desired_digest[:19]}), "
                 f"store generation {plan.store_generation}.")
    lines.append("")
    if plan.repositories:
        lines += ["| | repository | add | change | remove | download | published as |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for r in plan.repositories:
            acts = plan.actions_for(r.id)
            n = {c: sum(1 for a in acts if a.change is c) for c in Change}
            dl = sum(a.download.bytes for a in acts)
            lines.append(f"| `{r.status}` | `{_cell(r.id)}` | {n[Change.CREATE]} | {n[Change.UPDATE]} | "
                         f"{n[Change.DELETE]} | {human_bytes(dl) if dl else ''} | {_cell(r.publish_name or '')} |")
        lines.append("")
    destructive = [a for a in plan.actions if a.destructive]
    if destructive:
        lines += ["> [!WARNING]", f"> **{len(destructive)} destructive "
                  f"{'action' if len(destructive) == 1 else 'actions'}:**"]
        for a in destructive:
            lines.append(f"> - `{a.repo}`: {a.change.value} {action_line(a, plan)}")
        lines.append("")
    if plan.errors:
        lines += ["> [!CAUTION]", "> **Not planned (apply refuses this plan):**"]
        lines += [f"> - {e}" for e in plan.errors]
        lines.append("")
    if plan.failed_tags:
        lines += ["> [!CAUTION]", f"> **{len(plan.failed_tags)} failed "
                  f"{'tag' if len(plan.failed_tags) == 1 else 'tags'}** (kept as they are; the rest is applied):"]
        lines += [f"> - `{f.repo}` tag `{f.tag}`: {f.error}" for f in plan.failed_tags]
        lines.append("")
    if plan.unmanaged or plan.unknown_repositories or plan.warnings:
        for u in plan.unmanaged:
            if u.tags:
                lines.append(f"- Unmanaged, kept because prune is off: `{u.repo}` tags "
                             + ", ".join(f"`{t}`" for t in u.tags))
        if plan.unknown_repositories:
            lines.append("- Not in repos.yaml, kept: " + ", ".join(f"`{r}`" for r in plan.unknown_repositories))
        for w in plan.warnings:
            lines.append(f"- Warning: {w}")
        lines.append("")
    if plan.actions:
        flow = from_plan(plan)
        if len(flow.nodes) <= GRAPH_MAX_NODES:
            lines += ["<details open><summary>What changes in the flow</summary>", "", "```mermaid",
                      mermaid(flow).rstrip("\n"), "```", "", "</details>", ""]
        else:
            lines += [f"_The flow graph is left out: {len(flow.nodes)} nodes; "
                      "`reconciler graph -f FILE` draws the whole flow._", ""]
        lines += ["<details><summary>All actions</summary>", "", "```diff"]
        for r in plan.repositories:
            acts = [a for a in plan.actions_for(r.id)
                    if not (a.op in (Op.CREATE_REPOSITORY, Op.DELETE_REPOSITORY) and r.status in ("+", "-"))]
            if r.status == "=":
                continue
            lines.append(f"{'!' if r.status == '~' else r.status} {r.id}")
            for a in acts:
                symbol = "!" if a.change is Change.UPDATE else a.change.value
                lines.append(f"{symbol}     {action_line(a, plan)}")
        lines += ["```", "", "</details>", ""]
    return "\n".join(lines)
