"""Study rows as tables: the plan table shown on the page and in reports, and CSV export of every field.

Entry points: ``plan_label``, ``plan_table``, ``study_csv``, ``flatten``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from fleetwise.study import Study

# (column title, dotted field, digits) for training plan rows
TRAIN_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("step time s", "step_time_s", 4), ("MFU", "mfu", 3), ("tokens/s/chip", "tokens_per_s_per_chip", 0),
    ("memory GB", "memory_per_device_gb", 1), ("J/token", "energy.energy_j_per_token", 4),
    ("USD/step", "energy.step_cost_usd", 4), ("kg CO2/step", "energy.step_co2_kg", 4), ("days", "days", 2),
)
MAX_GENERIC_COLUMNS = 12


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (lists are kept as JSON-like text)."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def plan_label(plan: Mapping[str, Any]) -> str:
    """A short name for a parallel plan: ``tp8 pp4 dp2 vpp5 mbs1 z1 rc:full``."""
    parts = [f"tp{plan.get('tp', 1)}", f"pp{plan.get('pp', 1)}", f"dp{plan.get('dp', 1)}"]
    for k in ("cp", "ep", "vpp"):
        if int(plan.get(k, 1) or 1) > 1:
            parts.append(f"{k}{plan[k]}")
    if "micro_batch" in plan:
        parts.append(f"mbs{plan['micro_batch']}")
    if plan.get("zero"):
        parts.append(f"z{plan['zero']}")
    if plan.get("recompute") not in (None, "none"):
        parts.append(f"rc:{plan['recompute']}")
    return " ".join(parts)


def _get(row: Mapping[str, Any], dotted: str) -> Any:
    v: Any = row
    for part in dotted.split("."):
        if not isinstance(v, Mapping):
            return None
        v = v.get(part)
    return v


def plan_table(study: Study) -> dict[str, Any]:
    """The rows as ``{"columns": [...], "rows": [[...], ...]}``: curated columns for plans, else scalar fields."""
    rows = study.rows
    if rows and all(isinstance(r.get("plan"), Mapping) and "step_time_s" in r for r in rows):
        cols = [c for c in TRAIN_COLUMNS if any(_get(r, c[1]) is not None for r in rows)]
        body = [[i + 1, plan_label(r["plan"]), *(_round(_get(r, f), d) for _, f, d in cols)]
                for i, r in enumerate(rows)]
        return {"columns": ["#", "plan", *(t for t, _, _ in cols)], "rows": body}
    flat = [flatten(r) for r in rows]
    keys: list[str] = []
    for f in flat:
        keys.extend(k for k, v in f.items() if k not in keys and (v is None or isinstance(v, (str, int, float))))
    keys = keys[:MAX_GENERIC_COLUMNS]
    return {"columns": ["#", *keys], "rows": [[i + 1, *(_round(f.get(k), 4) for k in keys)]
                                              for i, f in enumerate(flat)]}


def _round(v: Any, digits: int) -> Any:
    if isinstance(v, float):
        return round(v) if digits == 0 else round(v, digits)
    return v


def study_csv(study: Study) -> str:
    """Every row, every field (dotted names), as CSV; a study without rows gives its flattened results."""
    rows = [flatten(r) for r in study.rows] or [flatten(study.results)]
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(v) for k, v in r.items()})
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return ";".join(str(x) for x in v)
    return v
