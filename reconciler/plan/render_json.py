"""Machine rendering of a ``Plan``: the documented JSON form (docs/plan-json.md).

The same document is what ``plan --out`` saves and ``apply PLAN`` reads, so what a
pipeline inspects is exactly what apply will do.
"""

from __future__ import annotations

from reconciler.plan.model import Plan


def render_json(plan: Plan) -> str:
    return plan.dumps()
