"""Markdown rendering of a ``Plan`` for a pull-request comment.

A summary line, a table with one row per repository, destructive actions called out in
their own list (so a reviewer cannot miss a removal), errors and warnings, the changed
part of the flow as a Mermaid graph (GitHub and GitLab draw it; changed edges thick), then
every action in a collapsed ``diff`` block (GitHub colours ``+``/``-`` lines) with full
digests.

A comment has a size limit (GitHub's is 65,536 characters), so the rendering stays under
``MAX_CHARS``: a plan too big for that collapses to one line per repository (as many as
fit, then a count of the rest) with a note naming where the full plan is (the ``--out``
file, or ``plan --json``). Errors and destructive actions come before the repositories,
so they are the last thing to be cut.
"""

from __future__ import annotations

from reconciler.plan.actions import Change, Op
from reconciler.plan.flowgraph import from_plan, mermaid
from reconciler.plan.model import Plan
from reconciler.plan.render_text import action_line, human_bytes, summary_line

#: above this many nodes the graph is left out (a reviewer cannot read it, and it would
#: crowd out the actions in a size-limited comment)
GRAPH_MAX_NODES = 60
#: the longest rendering (GitHub refuses comments over 65,536 characters; some room is
#: left for what a CI job wraps around it)
MAX_CHARS = 60_000


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _head(plan: Plan) -> list[str]:
    return ["### reconciler plan", "", f"**{summary_line(plan)}**", "",
            f"Desired file `{plan.desired_path}` ({plan.desired_digest[:19]}), store generation "
            f"{plan.store_generation}.", ""]


def _notes(plan: Plan) -> list[str]:
    """Destructive actions, errors, unmanaged content and warnings."""
    lines: list[str] = []
    destructive = [a for a in plan.actions if a.destructive]
    if destructive:
        lines += ["> [!WARNING]", f"> **{len(destructive)} destructive "
                  f"{'action' if len(destructive) == 1 else 'actions'}:**"]
        for a in destructive:
            lines.append(f"> - `{a.repo}`: {a.change.value} {action_line(a, plan)}")
        lines.append("")
    if plan.errors:
        lines += ["> [!CAUTION]", "> **Plan incomplete (apply refuses this plan):**"]
        for e in plan.errors:
            lines.append(f"> - {e}" + (f" (hint: {e.hint})" if e.hint else ""))
        lines.append("")
    failed = [f for f in plan.failed_tags if not f.refused]
    refused = [f for f in plan.failed_tags if f.refused]
    if failed:
        lines += ["> [!CAUTION]", f"> **{len(failed)} failed "
                  f"{'tag' if len(failed) == 1 else 'tags'}** (kept as they are; the rest is applied):"]
        lines += [f"> - `{f.repo}` tag `{f.tag}`: {f.error}" for f in failed]
        lines.append("")
    if refused:
        repos = sorted({f.repo for f in refused})
        lines += ["> [!CAUTION]", f"> **{len(refused)} {'tag' if len(refused) == 1 else 'tags'} refused by a verify "
                  f"policy** ({', '.join(f'`{r}`' for r in repos)} not applied; the rest is):"]
        lines += [f"> - `{f.repo}` tag `{f.tag}`: {f.error}" for f in refused]
        lines.append("")
    selections = [r for r in plan.repositories if r.selection or r.notes]
    if selections:
        for r in selections:
            lines += [f"- `{_cell(r.id)}`: {text}" for text in ((r.selection or ""), *r.notes) if text]
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
    return lines


def _counts(plan: Plan, repo: str) -> tuple[dict[Change, int], int]:
    acts = plan.actions_for(repo)
    return {c: sum(1 for a in acts if a.change is c) for c in Change}, sum(a.download.bytes for a in acts)


def _table(plan: Plan) -> list[str]:
    if not plan.repositories:
        return []
    lines = ["| | repository | add | change | remove | download | published as |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in plan.repositories:
        n, dl = _counts(plan, r.id)
        lines.append(f"| `{r.status}` | `{_cell(r.id)}` | {n[Change.CREATE]} | {n[Change.UPDATE]} | "
                     f"{n[Change.DELETE]} | {human_bytes(dl) if dl else ''} | {_cell(r.publish_name or '')} |")
    return lines + [""]


def _details(plan: Plan) -> list[str]:
    if not plan.actions:
        return []
    lines: list[str] = []
    flow = from_plan(plan)
    if len(flow.nodes) <= GRAPH_MAX_NODES:
        lines += ["<details open><summary>What changes in the flow</summary>", "", "```mermaid",
                  mermaid(flow).rstrip("\n"), "```", "", "</details>", ""]
    else:
        lines += [f"_The flow graph is left out: {len(flow.nodes)} nodes; "
                  "`reconciler graph -f FILE` draws the whole flow._", ""]
    lines += ["<details><summary>All actions</summary>", "", "```diff"]
    for r in plan.repositories:
        if r.status == "=":
            continue
        acts = [a for a in plan.actions_for(r.id)
                if not (a.op in (Op.CREATE_REPOSITORY, Op.DELETE_REPOSITORY) and r.status in ("+", "-"))]
        lines.append(f"{'!' if r.status == '~' else r.status} {r.id}")
        for a in acts:
            symbol = "!" if a.change is Change.UPDATE else a.change.value
            lines.append(f"{symbol}     {action_line(a, plan, full=True)}")
    return lines + ["```", "", "</details>", ""]


def _fit(lines: list[str], budget: int) -> tuple[list[str], int]:
    """As many of ``lines`` as fit in ``budget`` characters (with newlines)."""
    out: list[str] = []
    for line in lines:
        if len(line) + 1 > budget:
            break
        out.append(line)
        budget -= len(line) + 1
    return out, len(lines) - len(out)


def render_markdown(plan: Plan, *, full_plan: str | None = None, max_chars: int = MAX_CHARS) -> str:
    """The comment; ``full_plan``: the ``--out`` file a collapsed comment points to."""
    full = "\n".join(_head(plan) + _table(plan) + _notes(plan) + _details(plan))
    if len(full) <= max_chars:
        return full
    where = f"in `{full_plan}`" if full_plan else "in `reconciler plan --json` (or save it with `--out`)"
    note = ["> [!NOTE]", f"> This plan is too big for a comment ({len(full):,} characters): one line per "
            f"repository below; the full plan is {where}.", ""]
    head = _head(plan) + note
    rows = []
    for r in plan.repositories:
        if r.status == "=":
            continue
        n, dl = _counts(plan, r.id)
        rows.append(f"- `{r.status}` `{r.id}`: +{n[Change.CREATE]} ~{n[Change.UPDATE]} -{n[Change.DELETE]}"
                    + (f", {human_bytes(dl)}" if dl else "") + (f" (as `{r.publish_name}`)" if r.publish_name else ""))
    unchanged = sum(1 for r in plan.repositories if r.status == "=")
    reserve = 200  # the "... more" line and the unchanged count
    budget = max_chars - len("\n".join(head)) - 1 - reserve
    notes, cut_notes = _fit(_notes(plan), budget)
    if cut_notes:
        notes.append(f"- ... {cut_notes} more lines of warnings and destructive actions: see the full plan")
    budget -= sum(len(line) + 1 for line in notes)
    shown, cut = _fit(rows, budget)
    tail = []
    if cut:
        tail.append(f"- ... and {cut} more changed repositories: see the full plan")
    if unchanged:
        tail.append(f"- {unchanged} repositories unchanged")
    return "\n".join(head + notes + shown + tail) + "\n"
