"""A study as one self-contained HTML file: inputs, the plan table and the same charts as the web page.

Vega, Vega-Lite and vega-embed are inlined (vendored in ``assets/vendor``), so the report opens offline.
Entry points: ``study_html``, ``asset``.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from fleetwise.report.charts import study_charts
from fleetwise.report.tables import plan_table
from fleetwise.study import Study

VENDOR = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")


@lru_cache(maxsize=16)
def asset(name: str) -> str:
    """The text of a shipped asset (``study.js``, ``vendor/vega.min.js``, …)."""
    return resources.files("fleetwise.report").joinpath("assets", *name.split("/")).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can end it early)."""
    return json.dumps(value, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def table_html(table: dict[str, Any], cls: str = "fw-plans") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table["columns"])
    body = "".join("<tr>" + "".join(f"<td>{html.escape('–' if v is None else str(v))}</td>" for v in row) + "</tr>"
                   for row in table["rows"])
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _inputs_html(study: Study) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(json.dumps(v)[:300])}</code></td></tr>"
                   for k, v in sorted(study.inputs.items()))
    return f'<table class="fw-kv">{rows}</table>'


def study_html(study: Study) -> str:
    """The report: a complete HTML document with everything inlined."""
    scripts = "".join(f"<script>{asset('vendor/' + name)}</script>\n" for name in VENDOR)
    payload = study_charts(study)
    title = f"fleetwise {study.kind} study {study.id}"
    table = plan_table(study)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{asset('study.css')}</style>
{scripts}<script>{asset('study.js')}</script>
</head><body><main>
<h1>{html.escape(study.kind.replace('_', ' '))}: {html.escape(' · '.join(str(v) for k, v in study.inputs.items()
                                                               if k in ('model', 'hardware', 'chips')))}</h1>
<p class="fw-muted">study <code>{study.id}</code> · fleetwise {html.escape(study.version)} · {len(study.rows)} rows</p>
<h2>Inputs</h2>{_inputs_html(study)}
<h2>Plans</h2>{table_html(table) if table['rows'] else '<p class="fw-muted">no rows</p>'}
<h2>Charts</h2><div class="fw-detail" id="fw-detail"></div><div class="fw-charts" id="fw-charts"></div>
<script type="application/json" id="fw-data">{_script_json(payload)}</script>
<script>fleetwiseCharts.renderStudy(JSON.parse(document.getElementById("fw-data").textContent),
  document.getElementById("fw-charts"), document.getElementById("fw-detail"));</script>
<p class="fw-muted">Charts drawn with Vega-Lite (BSD-3-Clause), inlined.</p>
</main></body></html>
"""
