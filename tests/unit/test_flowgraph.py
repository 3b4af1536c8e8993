"""``reconciler graph`` and the Mermaid graph of the Markdown plan."""

from __future__ import annotations

from pathlib import Path

from reconciler import api
from reconciler.desired.loader import load_desired
from reconciler.plan.flowgraph import dot, from_desired, from_plan, mermaid
from reconciler.plan.render_markdown import render_markdown
from reconciler.store.sqlite import SQLiteStore

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def test_the_whole_flow_of_the_demo() -> None:
    flow = from_desired(load_desired(DEMO))
    edges = {(flow.nodes[e.src][1], flow.nodes[e.dst][1], e.label) for e in flow.edges.values()}
    assert edges == {
        ("images/hello-v2s2.tar", "schema2", "upload"),
        ("schema2", "pulpdemo/schema2", "publish"),
        ("images/hello-multiarch-oci.tar", "containers", "upload"),
        ("containers", "pulpdemo/hello", "publish"),
        ("containers", "containers2", "copy tags 1.0"),
        ("schema2", "containers2", "copy all manifests"),
        ("containers", "containers2", "pin stable=1.0"),
        ("containers2", "prod/hello", "publish (protected)"),
    }
    text = mermaid(flow)
    assert text.startswith("flowchart LR\n") and '(["prod/hello"])' in text
    assert "==>" not in text  # nothing is marked changed in the whole-flow view
    graphviz = dot(flow)
    assert graphviz.startswith("digraph reconciler {") and 'label="copy tags 1.0"' in graphviz


def test_labels_cannot_break_out_of_mermaid_or_dot() -> None:
    from reconciler.plan.flowgraph import Flow

    flow = Flow()
    flow.edge(flow.node("repo", 'a"] --> evil["x'), flow.node("name", "n|m"), 'pin "x"|y')
    text = mermaid(flow)
    assert text.splitlines()[1] == '  n0["a#quot;] --#gt; evil[#quot;x"]'  # one node, its label escaped
    assert "#124;" in text
    assert '\\"' in dot(flow)


def test_the_markdown_plan_draws_the_changed_part(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store")
    try:
        plan = api.make_plan(store, DEMO)
    finally:
        store.close()
    flow = from_plan(plan)
    changed = {(flow.nodes[e.src][1], flow.nodes[e.dst][1], e.change) for e in flow.edges.values() if e.change}
    assert ("containers2", "prod/hello", "+") in changed and ("containers", "containers2", "+") in changed
    md = render_markdown(plan)
    block = md.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert "==>|+ publish| " in block and "linkStyle" in block
