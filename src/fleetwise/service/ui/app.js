// The fleetwise page: forms for the study kinds, jobs followed by server-sent events, result pages with the
// plan table and charts (fleetwiseCharts), stored studies with search and compare, and the catalog browser.
(function () {
  "use strict";
  const C = window.fleetwiseCharts, el = C.el, view = document.getElementById("view");
  const tokenInput = document.getElementById("token");
  tokenInput.value = localStorage.getItem("fleetwise-token") || "";
  tokenInput.addEventListener("change", () => localStorage.setItem("fleetwise-token", tokenInput.value));
  let catalog = null, kinds = null;

  function toast(msg) {
    const t = document.getElementById("toast");
    t.textContent = msg; t.style.display = "block";
    clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.style.display = "none"; }, 8000);
  }
  async function call(method, url, body) {
    const headers = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (method !== "GET" && tokenInput.value) headers["authorization"] = "Bearer " + tokenInput.value;
    const r = await fetch(url, {method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body)});
    if (r.status === 204) return null;
    const data = await r.json().catch(() => ({error: "HTTP " + r.status}));
    if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
    return data;
  }
  function h(tag, text, attrs) { return el(tag, attrs || {}, text); }
  function option(value, label, selected) {
    const o = el("option", {value: value}, label || value);
    if (selected) o.selected = true;
    return o;
  }
  async function loadCatalog() { if (!catalog) catalog = await call("GET", "/api/catalog"); return catalog; }
  async function loadKinds() { if (!kinds) kinds = await call("GET", "/api/kinds"); return kinds; }

  function field(form, label, input, wide) {
    const l = el("label", wide ? {"class": "fw-wide"} : {}); l.appendChild(document.createTextNode(label)); l.appendChild(input);
    form.appendChild(l); return input;
  }
  function select(name, values, chosen) {
    const s = el("select", {name: name, id: "f-" + name});
    for (const v of values) s.appendChild(option(v.id || v, v.name ? v.id + " — " + v.name : undefined, (v.id || v) === chosen));
    return s;
  }
  function number(name, value, placeholder) {
    const i = el("input", {name: name, id: "f-" + name, type: "number", min: "1", step: "any"});
    if (value !== undefined) i.value = value;
    if (placeholder) i.placeholder = placeholder;
    return i;
  }

  async function runJob(kind, inputs, statusBox) {
    statusBox.innerHTML = "";
    const bar = el("progress", {id: "job-progress", max: "1", value: "0"}), text = h("p", "queued", {"class": "fw-muted", id: "job-state"});
    statusBox.appendChild(bar); statusBox.appendChild(text);
    const job = await call("POST", "/api/jobs", {kind: kind, inputs: inputs});
    return new Promise((resolve, reject) => {
      const es = new EventSource("/api/jobs/" + job.id + "/events");
      es.onmessage = (ev) => {
        const s = JSON.parse(ev.data);
        if (s.total) { bar.max = s.total; bar.value = s.done; }
        text.textContent = s.state + (s.total ? ": " + s.done.toLocaleString() + " of " + s.total.toLocaleString() + " candidates" : "")
          + " · " + s.elapsed_s.toFixed(1) + " s";
        if (s.state === "done") { es.close(); resolve(s.study_id); }
        if (s.state === "failed") { es.close(); reject(new Error(s.error)); }
      };
      es.onerror = () => { es.close(); pollJob(job.id, resolve, reject); };
    });
  }
  function pollJob(id, resolve, reject) {   // fallback when the event stream breaks
    call("GET", "/api/jobs/" + id).then((s) => {
      if (s.state === "done") resolve(s.study_id);
      else if (s.state === "failed") reject(new Error(s.error));
      else setTimeout(() => pollJob(id, resolve, reject), 500);
    }, reject);
  }

  async function newStudy() {
    const [cat, ks] = await Promise.all([loadCatalog(), loadKinds()]);
    view.innerHTML = "";
    view.appendChild(h("h1", "Plan training"));
    const form = el("form", {"class": "fw-form", id: "plan-form"});
    const model = field(form, "model", select("model", cat.models, "llama3-8b"));
    const hw = field(form, "hardware", select("hardware", cat.accelerators, "nvidia_h100_sxm"));
    const chips = field(form, "chips", number("chips", 64));
    const seq = field(form, "sequence length", number("seq_len", 4096));
    const gbs = field(form, "global batch (sequences)", number("global_batch", undefined, "default ~4M tokens"));
    const prec = field(form, "precision", select("precision", ["bf16", "fp16", "fp8", "fp32", "tf32"], "bf16"));
    const obj = field(form, "rank by", select("objective", ["time", "energy", "cost", "carbon"], "time"));
    const top = field(form, "plans to keep", number("top", 10));
    const go = el("button", {type: "submit", id: "run-plan"}, "Search plans");
    const wrap = el("div", {"class": "fw-wide"}); wrap.appendChild(go); form.appendChild(wrap);
    const status = el("div", {"class": "fw-wide", id: "job-status"}); form.appendChild(status);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault(); go.disabled = true;
      const inputs = {model: model.value, hardware: hw.value, chips: +chips.value, seq_len: +seq.value,
                      precision: prec.value, objective: obj.value, top: +top.value};
      if (gbs.value) inputs.global_batch = +gbs.value;
      try { location.hash = "#/study/" + await runJob("plan_train", inputs, status); }
      catch (e) { toast(e.message); status.textContent = e.message; } finally { go.disabled = false; }
    });
    view.appendChild(form);

    view.appendChild(h("h2", "Any study kind"));
    const f2 = el("form", {"class": "fw-form", id: "kind-form"});
    const kind = field(f2, "kind", select("kind", ks.kinds.map(k => k.kind), "explain_train"));
    const ta = field(f2, "inputs (JSON, as for fleetwise.api.run_study)", el("textarea", {id: "f-inputs"}), true);
    const fill = () => {
      const k = ks.kinds.find(x => x.kind === kind.value);
      ta.value = JSON.stringify(k && k.example ? k.example : {model: "llama3-8b", hardware: "nvidia_h100_sxm"}, null, 2);
    };
    kind.addEventListener("change", fill); fill();
    const go2 = el("button", {type: "submit", id: "run-kind"}, "Run");
    const w2 = el("div", {"class": "fw-wide"}); w2.appendChild(go2); f2.appendChild(w2);
    const st2 = el("div", {"class": "fw-wide"}); f2.appendChild(st2);
    f2.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let inputs;
      try { inputs = JSON.parse(ta.value); } catch (e) { toast("inputs: " + e.message); return; }
      go2.disabled = true;
      try { location.hash = "#/study/" + await runJob(kind.value, inputs, st2); }
      catch (e) { toast(e.message); st2.textContent = e.message; } finally { go2.disabled = false; }
    });
    view.appendChild(f2);
    const lim = ks.limits;
    view.appendChild(h("p", "Limits: " + lim.max_running + " studies at once (" + lim.max_waiting + " waiting), "
      + lim.time_budget_s + " s and " + lim.max_candidates.toLocaleString() + " candidates per study, requests up to "
      + (lim.max_request_bytes / 1024) + " KiB.", {"class": "fw-muted"}));
  }

  function table(t, cls, onRow) {
    const tab = el("table", {"class": cls}), head = el("tr");
    for (const c of t.columns) head.appendChild(h("th", c));
    const thead = el("thead"); thead.appendChild(head); tab.appendChild(thead);
    const body = el("tbody");
    t.rows.forEach((r, i) => {
      const tr = el("tr");
      for (const v of r) tr.appendChild(h("td", C.fmt(v)));
      if (onRow) tr.addEventListener("click", () => onRow(i));
      body.appendChild(tr);
    });
    tab.appendChild(body); return tab;
  }

  async function showStudy(id) {
    const p = await call("GET", "/api/studies/" + encodeURIComponent(id) + "/charts");
    view.innerHTML = "";
    view.appendChild(h("h1", p.kind.replace(/_/g, " ") + ": " + ["model", "hardware", "chips"].filter(k => p.inputs[k] !== undefined).map(k => p.inputs[k]).join(" · ")));
    const acts = el("p", {"class": "fw-actions"});
    acts.appendChild(h("code", p.id));
    for (const f of ["json", "csv", "html"]) acts.appendChild(el("a", {href: "/api/studies/" + p.id + "/export/" + f, download: ""}, f.toUpperCase()));
    const del = el("button", {"class": "fw-secondary", id: "delete-study"}, "Delete");
    del.addEventListener("click", async () => {
      if (!confirm("Delete study " + p.id + "?")) return;
      try { await call("DELETE", "/api/studies/" + p.id); location.hash = "#/studies"; } catch (e) { toast(e.message); }
    });
    acts.appendChild(del); view.appendChild(acts);
    const inputs = el("details"); inputs.appendChild(h("summary", "Inputs"));
    inputs.appendChild(h("pre", JSON.stringify(p.inputs, null, 2))); view.appendChild(inputs);
    const detail = el("div", {"class": "fw-detail", id: "fw-detail"});
    view.appendChild(h("h2", "Plans"));
    if (p.table.rows.length) view.appendChild(table(p.table, "fw-plans", (i) => {
      const plan = p.plans.find(q => q.rank === i + 1);
      if (plan) { C.showPlan(p, plan.key, detail); detail.scrollIntoView({block: "nearest"}); }
    }));
    else view.appendChild(h("p", "no rows", {"class": "fw-muted"}));
    view.appendChild(h("h2", "Charts"));
    view.appendChild(detail);
    const charts = el("div", {"class": "fw-charts", id: "fw-charts"}); view.appendChild(charts);
    await C.renderStudy(p, charts, detail);
  }

  async function listStudies() {
    view.innerHTML = "";
    view.appendChild(h("h1", "Stored studies"));
    const bar = el("form", {"class": "fw-form"});
    const q = field(bar, "search (id, kind, model, hardware)", el("input", {id: "study-search", type: "search"}));
    const cmp = el("button", {type: "button", id: "compare-selected", "class": "fw-secondary"}, "Compare selected");
    const w = el("div"); w.appendChild(cmp); bar.appendChild(w);
    view.appendChild(bar);
    const box = el("div"); view.appendChild(box);
    const chosen = new Set();
    async function refresh() {
      const data = await call("GET", "/api/studies?limit=200&q=" + encodeURIComponent(q.value));
      box.innerHTML = "";
      if (!data.studies.length) { box.appendChild(h("p", "no studies", {"class": "fw-muted"})); return; }
      const tab = el("table", {"class": "fw-plans", id: "study-list"}), head = el("tr");
      for (const c of ["", "id", "kind", "what", "rows", "created", "version"]) head.appendChild(h("th", c));
      const th = el("thead"); th.appendChild(head); tab.appendChild(th);
      const body = el("tbody");
      for (const s of data.studies) {
        const tr = el("tr"), cb = el("input", {type: "checkbox"});
        cb.checked = chosen.has(s.id);
        cb.addEventListener("change", () => { cb.checked ? chosen.add(s.id) : chosen.delete(s.id); });
        const td0 = el("td"); td0.appendChild(cb); tr.appendChild(td0);
        const a = el("a", {href: "#/study/" + s.id}, s.id), td1 = el("td"); td1.appendChild(a); tr.appendChild(td1);
        for (const v of [s.kind, s.title, s.n_rows, s.created_at.replace("T", " "), s.version]) tr.appendChild(h("td", String(v)));
        body.appendChild(tr);
      }
      tab.appendChild(body); box.appendChild(tab);
    }
    let timer = null;
    q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
    bar.addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
    cmp.addEventListener("click", () => {
      if (chosen.size < 2) { toast("choose two or more studies to compare"); return; }
      location.hash = "#/compare/" + Array.from(chosen).join(",");
    });
    await refresh();
  }

  async function compare(ids) {
    const d = await call("GET", "/api/compare?ids=" + encodeURIComponent(ids));
    view.innerHTML = "";
    view.appendChild(h("h1", "Side by side"));
    const fields = [["kind", s => s.kind], ["what", s => s.title], ["best plan", s => s.best.plan],
      ["chips", s => s.best.chips], ["step time s", s => s.best.step_time_s], ["MFU", s => s.best.mfu],
      ["tokens/s/chip", s => s.best.tokens_per_s_per_chip], ["memory GB", s => s.best.memory_per_device_gb],
      ["J/token", s => s.best.energy_j_per_token], ["USD/step", s => s.best.step_cost_usd]];
    const t = {columns: ["", ...d.studies.map(s => s.id)], rows: fields.map(([n, f]) => [n, ...d.studies.map(s => f(s) ?? null)])};
    view.appendChild(table(t, "fw-kv", null));
    const div = el("div", {"class": "fw-chart", id: "fw-compare-chart"}); view.appendChild(div);
    await vegaEmbed(div, d.spec, {actions: false, renderer: "svg"});
  }

  async function browseCatalog(sel) {
    const cat = await loadCatalog();
    view.innerHTML = "";
    view.appendChild(h("h1", "Catalog"));
    const cols = el("div", {"class": "fw-cols"}), left = el("div"), right = el("div");
    cols.appendChild(left); cols.appendChild(right); view.appendChild(cols);
    const filter = el("input", {type: "search", placeholder: "filter", id: "catalog-filter"}); left.appendChild(filter);
    const list = el("div"); left.appendChild(list);
    function draw() {
      list.innerHTML = "";
      for (const kind of Object.keys(cat)) {
        const items = cat[kind].filter(e => (e.id + " " + e.name).toLowerCase().includes(filter.value.toLowerCase()));
        if (!items.length) continue;
        list.appendChild(h("h3", kind + " (" + items.length + ")"));
        const ul = el("ul");
        for (const e of items) {
          const li = el("li"), a = el("a", {href: "#/catalog/" + kind + "/" + e.id}, e.id);
          li.appendChild(a); if (e.name) li.appendChild(document.createTextNode(" — " + e.name)); ul.appendChild(li);
        }
        list.appendChild(ul);
      }
    }
    filter.addEventListener("input", draw); draw();
    if (sel) {
      const [kind, id] = sel.split("/");
      const d = await call("GET", "/api/catalog/" + encodeURIComponent(kind) + "/" + encodeURIComponent(id));
      right.appendChild(h("h2", d.kind + "/" + d.id)); right.appendChild(h("pre", JSON.stringify(d.spec, null, 2)));
    }
  }

  async function route() {
    const hsh = location.hash.replace(/^#\/?/, "");
    const [page, ...rest] = hsh.split("/");
    try {
      if (page === "study") await showStudy(rest[0]);
      else if (page === "studies") await listStudies();
      else if (page === "compare") await compare(rest[0]);
      else if (page === "catalog") await browseCatalog(rest.join("/"));
      else await newStudy();
    } catch (e) { toast(e.message); }
  }
  window.addEventListener("hashchange", route);
  route();
})();
