// Renders a study's charts (Vega-Lite specs built by fleetwise.report.charts) and the breakdown of a clicked plan.
// Shared by the web page and self-contained HTML reports; needs vega, vega-lite and vega-embed loaded first.
(function () {
  "use strict";
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(v) {
    if (typeof v !== "number") return v === null || v === undefined ? "–" : String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(5));
  }
  function showPlan(payload, key, detail) {
    const plan = payload.plans[key];
    if (!plan) return;
    detail.innerHTML = "";
    detail.setAttribute("data-plan-key", String(key));
    detail.appendChild(el("h3", {}, "Plan " + plan.label + (plan.rank ? " (rank " + plan.rank + ")" : "")));
    const t = el("table", {"class": "fw-kv"});
    for (const [name, field] of [["step time s", "step_time_s"], ["memory GB", "memory_gb"], ["MFU", "mfu"],
        ["energy per step kJ", "step_energy_kj"], ["cost per step USD", "step_cost_usd"], ["CO2 per step kg", "step_co2_kg"]]) {
      const tr = el("tr"); tr.appendChild(el("th", {}, name)); tr.appendChild(el("td", {}, fmt(plan[field]))); t.appendChild(tr);
    }
    for (const p of plan.parts) {
      const tr = el("tr", {"class": "fw-part"}); tr.appendChild(el("th", {}, p.part)); tr.appendChild(el("td", {}, fmt(p.seconds) + " s"));
      t.appendChild(tr);
    }
    detail.appendChild(t);
    const spec = JSON.parse(JSON.stringify(payload.breakdown));
    spec.title = "Breakdown of " + plan.label;
    spec.data = {values: plan.parts.map(p => Object.assign({label: plan.label, key: key}, p))};
    const div = el("div", {"class": "fw-chart", "id": "fw-breakdown-chart"});
    detail.appendChild(div);
    return vegaEmbed(div, spec, {actions: false, renderer: "svg"});
  }
  function renderStudy(payload, chartsEl, detailEl) {
    const done = [];
    chartsEl.innerHTML = "";
    for (const c of payload.charts) {
      const box = el("section", {"class": "fw-chart-box", "data-chart": c.name});
      box.appendChild(el("h3", {}, c.title + (c.clickable ? " — click a plan to see its breakdown" : "")));
      const div = el("div", {"class": "fw-chart", "id": "fw-chart-" + c.name});
      box.appendChild(div);
      chartsEl.appendChild(box);
      done.push(vegaEmbed(div, c.spec, {actions: false, renderer: "svg"}).then(function (res) {
        if (c.clickable) {
          res.view.addEventListener("click", function (_ev, item) {
            if (item && item.datum && item.datum.key !== undefined) showPlan(payload, item.datum.key, detailEl);
          });
        }
        div.setAttribute("data-ready", "1");
        return res;
      }));
    }
    return Promise.all(done);
  }
  window.fleetwiseCharts = {renderStudy: renderStudy, showPlan: showPlan, fmt: fmt, el: el};
})();
