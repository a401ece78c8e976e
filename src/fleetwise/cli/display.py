"""Print any study as tables: one printer per study kind (the renderers live beside their commands)."""

from __future__ import annotations

from typing import Any

from fleetwise.cli import compare, power, render, serve
from fleetwise.study import Study


def study(s: Study) -> None:
    """Print any study as a table."""
    printers: dict[str, Any] = {
        "plan_train": render.training_search, "explain_train": render.plan_result,
        "compare_train": render.comparison, "match_train": render.match,
        "plan_train_mixed": render.mixed_training, "power_train": power.render, "plan_serve": serve.render_plan,
        "explain_serve": serve.render_explain, "simulate": serve.render_simulate,
        "compare_serve": compare.render_compare, "match_serve": compare.render_match,
        "validate": render.validation}
    printers[s.kind](s)
