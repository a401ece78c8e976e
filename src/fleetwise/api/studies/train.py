"""Training study kinds: plan, explain, compare, match, mixed fleets and power of one plan.

Each runner reads its inputs (rejecting any it does not use), calls the library and returns a ``Study``
whose inputs echo everything resolved (model, chips, system, seq-len, global batch and how it was chosen,
precision) and whose results hold rows serialised by ``fleetwise.search.serialize``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetwise.api.studies.inputs import Inputs, echo
from fleetwise.catalog.loader import Catalog
from fleetwise.catalog.types import SiteLink
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.plan import TrainingPlan
from fleetwise.progress import ProgressFn
from fleetwise.study import Study

JOB_KEYS = ("system", "seq_len", "global_batch", "precision", "tokens", "attention_kernel", "lora_rank", "sites",
            "site_link_gbit", "site_link_rtt_ms")
PRECISIONS = ("bf16", "fp16", "fp8", "fp32", "tf32")
PLAN_FIELDS = tuple(TrainingPlan.model_fields)

TRAIN_INPUTS: dict[str, tuple[str, ...]] = {  # the inputs each study kind takes (any other is rejected)
    "plan_train": ("model", "hardware", "chips", "pinned", "top", "objective", *JOB_KEYS),
    "explain_train": ("model", "hardware", "plan", *JOB_KEYS),
    "power_train": ("model", "hardware", "plan", "site", "clock", "cap_w", "stage_plan", *JOB_KEYS),
    "compare_train": ("model", "hardware", "systems", "chips", "top", *(k for k in JOB_KEYS if k != "system")),
    "match_train": ("model", "ours", "theirs", "their_chips", "their_system", "max_factor",
                    *(k for k in JOB_KEYS if not k.startswith("site"))),
    "plan_train_mixed": ("model", "fleet", "seq_len", "global_batch", "precision", "top"),
}


def training_plan(fields: object, where: str) -> TrainingPlan:
    """A ``TrainingPlan`` from JSON data, with the offending field named."""
    from pydantic import ValidationError

    from fleetwise.catalog.loader import format_validation_error

    if not isinstance(fields, Mapping):
        raise SpecError(f"{where}: plan must be an object of plan fields (got {echo(fields)})")
    try:
        return TrainingPlan(**dict(fields))
    except ValidationError as exc:
        raise SpecError(format_validation_error(where, exc)) from None


def _job(r: Inputs, *, system: bool = True, sites: bool = True) -> dict[str, Any]:
    """The job inputs as keyword arguments of ``api.training_setup``."""
    kw: dict[str, Any] = {"seq_len": r.whole("seq_len", 4096),
                          "precision": r.text("precision", "bf16", choices=PRECISIONS),
                          "attention_kernel": r.text("attention_kernel", "flash", choices=("flash", "unfused"))}
    for k, v in (("global_batch", r.whole("global_batch")), ("tokens", r.number("tokens")),
                 ("lora_rank", r.whole("lora_rank")), ("system", r.text("system") if system else None)):
        if v is not None:
            kw[k] = v
    if sites:
        kw["sites"] = r.whole("sites", 1)
        gbit = r.number("site_link_gbit")
        rtt = r.number("site_link_rtt_ms", positive=False)
        if rtt is not None and gbit is None:
            raise SpecError(f"{r.kind}: site_link_rtt_ms (--site-link-rtt-ms) needs site_link_gbit "
                            "(--site-link-gbit): there is no link between sites without a line rate")
        if gbit is not None:
            from pydantic import ValidationError

            from fleetwise.catalog.loader import format_validation_error

            try:
                kw["site_link"] = SiteLink(gbit_per_s=gbit, rtt_ms=1.0 if rtt is None else rtt)
            except ValidationError as exc:
                raise SpecError(format_validation_error(f"{r.kind}: site link", exc)) from None
    return kw


def _gb_rule(given: bool) -> str:
    from fleetwise.api import core as api

    return "given" if given else f"default: {api.DEFAULT_GLOBAL_BATCH}"


def _echo_job(setup: Any, kw: Mapping[str, Any], model: str) -> dict[str, Any]:
    """What the setup resolved to, defaults included."""
    link = kw.get("site_link")
    return {"model": model, "model_id": setup.model.id, "hardware": setup.accel.id,
            "system": None if setup.system is None else setup.system.id,
            "seq_len": setup.job.seq_len, "global_batch": setup.job.global_batch,
            "global_batch_rule": "given" if "global_batch" in kw else setup.job.global_batch_basis,
            "tokens_per_step": setup.job.seq_len * setup.job.global_batch,
            "precision": setup.job.precision, "tokens": setup.job.tokens,
            "attention_kernel": setup.job.attention_kernel, "lora_rank": setup.job.lora_rank,
            "sites": kw.get("sites", 1),
            "site_link_gbit": None if link is None else link.gbit_per_s,
            "site_link_rtt_ms": None if link is None else link.rtt_ms}


def _pinned(r: Inputs) -> dict[str, Any]:
    pinned = r.mapping("pinned")
    bad = sorted(set(pinned) - set(PLAN_FIELDS))
    if bad:
        raise SpecError(f"{r.kind}: pinned has unknown plan field {echo(bad[0])} (allowed: {', '.join(PLAN_FIELDS)})")
    training_plan({**pinned}, f"{r.kind}.pinned")  # same checks as a whole plan
    return pinned


def plan_train(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from fleetwise.api import core as api
    from fleetwise.search.serialize import search_dict

    r = Inputs("plan_train", inputs, TRAIN_INPUTS["plan_train"],
               {"fleet": "a mixed fleet is the plan_train_mixed study"})
    model, hw, chips = r.req_text("model"), r.req_text("hardware"), r.req_whole("chips")
    if ":" in hw:
        raise SpecError("plan_train: hardware is one accelerator id; a mixed fleet HW:N,HW:M is plan_train_mixed")
    pinned, top = _pinned(r), r.whole("top", 10)
    objective = r.text("objective", "time", choices=("time", "energy", "cost", "carbon"))
    kw = _job(r)
    setup = api.training_setup(model, hw, chips=chips, catalog=catalog, **kw)
    s = api.plan_training(model, hw, chips, pinned=pinned, top=top or 10, objective=objective or "time",
                          catalog=catalog, progress=progress, **kw)
    resolved = {**_echo_job(setup, kw, model), "chips": chips, "pinned": pinned, "objective": s.objective, "top": top}
    data = search_dict(s)
    data["rows"] = _flag_mfu(data.pop("best"), setup.accel.id)
    return Study("plan_train", {**resolved, "defaults": r.defaults()}, data)


def explain_train(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from fleetwise.api import core as api
    from fleetwise.search.evaluate import evaluate_plan
    from fleetwise.search.serialize import plan_dict

    r = Inputs("explain_train", inputs, TRAIN_INPUTS["explain_train"])
    model, hw = r.req_text("model"), r.req_text("hardware")
    plan = _plan_input(r)
    kw = _job(r)
    setup = api.training_setup(model, hw, chips=plan.chips, catalog=catalog, **kw)
    res = evaluate_plan(setup, plan)
    resolved = {**_echo_job(setup, kw, model), "chips": plan.chips, "plan": plan.model_dump()}
    rows = _flag_mfu([plan_dict(res)], setup.accel.id)
    return Study("explain_train", {**resolved, "defaults": r.defaults()}, {"rows": rows})


def power_train(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from fleetwise.energy.training import PowerSettings
    from fleetwise.search.serialize import plan_dict

    r = Inputs("power_train", inputs, TRAIN_INPUTS["power_train"])
    model, hw = r.req_text("model"), r.req_text("hardware")
    plan = _plan_input(r)
    settings = PowerSettings(clock=r.number("clock", 1.0, maximum=1.0) or 1.0, cap_w=r.number("cap_w"),
                             stage_plan=r.switch("stage_plan", False))
    site = r.text("site")
    kw = _job(r)
    p = power_training(model, hw, plan, site=site, settings=settings, catalog=catalog, **kw)
    resolved = {**_echo_job(p.setup, kw, model), "chips": plan.chips, "plan": plan.model_dump(),
                "site": p.result.energy.site if p.result.energy else site, "clock": settings.clock,
                "cap_w": settings.cap_w, "stage_plan": settings.stage_plan}
    return Study("power_train", {**resolved, "defaults": r.defaults()},
                 {"rows": [plan_dict(p.result)], "sweeps": p.sweeps_dict()})


@dataclass(frozen=True, slots=True)
class PowerStudy:
    """One training plan's power and energy at given settings, with the stage-plan, clock and cap sweeps."""

    setup: Any  # TrainingSetup
    result: Any  # PlanResult; its ``energy`` is at the requested settings
    sweeps: dict[str, list[Any]]  # name -> [energy.optimize outcome]
    stock: Any  # the outcome at stock clocks, the sweeps' reference

    def sweeps_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {k: [{"settings": o.settings.label(), "step_time_s": round(o.step_time_s, 6),
                     "step_energy_j": round(o.step_energy_j, 1),
                     "avg_power_w_per_chip": round(o.avg_power_w_per_chip, 2),
                     "energy_saving": round(o.versus(self.stock)[0], 5),
                     "slowdown": round(o.versus(self.stock)[1], 5)} for o in v] for k, v in self.sweeps.items()}


def power_training(
    model: str | Any,
    hardware: str,
    plan: TrainingPlan,
    *,
    site: str | None = None,
    settings: Any = None,
    catalog: Catalog | None = None,
    **job: Any,
) -> PowerStudy:
    """Power, energy, cost and CO2 of one plan at ``settings`` (``PowerSettings``; default stock clocks), and
    the stage-plan, clock and cap sweeps around it. ``job`` takes the ``training_setup`` keywords. At stock
    settings the step time is exactly the one ``plan_training`` reports for the same plan."""
    from fleetwise.api.core import training_setup
    from fleetwise.energy.optimize import cap_settings, clock_settings, sweep_settings
    from fleetwise.energy.training import PowerSettings, for_training
    from fleetwise.perf.candidates import Candidates
    from fleetwise.perf.training import training_step
    from fleetwise.search.evaluate import evaluate_plan

    settings = settings or PowerSettings()
    setup = training_setup(model, hardware, chips=plan.chips, catalog=catalog, **job)
    e = for_training(setup, site, settings)
    r = evaluate_plan(setup, plan, energy=e)
    c = Candidates.from_plans([plan])
    cols = training_step(c, setup)
    stock = sweep_settings(c, cols, setup, e, [PowerSettings()])[0]
    sweeps = {"stage_plan": sweep_settings(c, cols, setup, e, [PowerSettings(stage_plan=True)]),
              "clock": sweep_settings(c, cols, setup, e, clock_settings(e)),
              "cap": sweep_settings(c, cols, setup, e, cap_settings(e))}
    return PowerStudy(setup, r, sweeps, stock)


def compare_train(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from fleetwise.api import core as api
    from fleetwise.search.serialize import plan_dict

    r = Inputs("compare_train", inputs, TRAIN_INPUTS["compare_train"],
               {"system": "compare train compares several; give systems (--systems A,B) instead"})
    model, chips = r.req_text("model"), r.req_whole("chips")
    hws, systems = r.ids("hardware"), r.ids("systems")
    if bool(hws) == bool(systems):
        raise SpecError("compare_train: give exactly one of hardware (--hardware A,B) or systems (--systems A,B)"
                        + (" (got both)" if hws else ""))
    top = r.whole("top", 3) or 3
    kw = _job(r, system=False)
    results = api.compare_training(model, hws, chips, systems=systems or None, catalog=catalog, top=top,
                                   progress=progress, **kw)
    rows: list[dict[str, Any]] = []
    infeasible: dict[str, str] = {}
    searches: dict[str, Any] = {}
    for target, res in results.items():
        if isinstance(res, InfeasibleError):
            infeasible[target] = str(res)
            continue
        hw = catalog.system(target).accelerator_id if systems else target
        sys_id = target if systems else _default_system_id(catalog, hw)
        searches[target] = {"candidates_evaluated": res.candidates_evaluated, "feasible": res.feasible}
        for rank, pr in enumerate(res.best):
            rows += _flag_mfu([{"target": target, "rank": rank, "hardware": hw, "system": sys_id, **plan_dict(pr)}],
                              hw)
    first = hws[0] if hws else catalog.system(systems[0], "systems").accelerator_id
    setup = api.training_setup(model, first, chips=chips, catalog=catalog, **kw)
    job = _echo_job(setup, kw, model)
    for k in ("hardware", "system"):
        job.pop(k)
    resolved = {**job, "chips": chips, "hardware": hws, "systems": systems, "top": top}
    return Study("compare_train", {**resolved, "defaults": r.defaults()},
                 {"rows": rows, "infeasible": infeasible, "searches": searches})


def _default_system_id(catalog: Catalog, hw: str) -> str | None:
    s = catalog.default_system(hw)
    return None if s is None else s.id


def match_train(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from fleetwise.api import core as api
    from fleetwise.search.serialize import plan_dict

    r = Inputs("match_train", inputs, TRAIN_INPUTS["match_train"],
               {k: "both fleets are matched inside one site" for k in ("sites", "site_link_gbit",
                                                                        "site_link_rtt_ms")})
    model, ours, theirs = r.req_text("model"), r.req_text("ours"), r.req_text("theirs")
    their_chips = r.req_whole("their_chips")
    their_system = r.text("their_system")
    max_factor = r.number("max_factor", 16.0) or 16.0
    kw = _job(r, sites=False)
    m = api.match_training(model, ours, theirs, their_chips, progress=progress, system=kw.pop("system", None),
                           their_system=their_system, max_factor=max_factor, catalog=catalog, **kw)
    rows = []
    for side, hw, pr in (("theirs", theirs, m.their_plan), ("ours", ours, m.our_plan)):
        if pr is not None:
            rows.append({"side": side, "hardware": hw, "system": pr_system(m, side), **plan_dict(pr)})
    setup = api.training_setup(model, ours, chips=their_chips, catalog=catalog,
                               global_batch=m.global_batch, **{k: v for k, v in kw.items() if k != "global_batch"})
    job = _echo_job(setup, kw, model)
    job["global_batch_rule"] = _gb_rule("global_batch" in kw) + (
        "" if "global_batch" in kw else f", for their {their_chips} chips; the same batch on ours")
    for k in ("hardware", "system"):
        job.pop(k)
    resolved = {**job, "ours": ours, "system": m.our_system, "theirs": theirs, "their_chips": their_chips,
                "their_system": m.their_system, "max_factor": max_factor}
    tried = [[n, t] for n, t in m.tried]
    prev = m.tried[-2][0] if len(m.tried) >= 2 else None
    bound = None if m.our_chips is None else (
        f"upper bound: {m.our_chips} chips reach it; counts tried are whole nodes with no prime factor above 3, "
        f"each >= 4 % above the last, so the true minimum lies in ({prev or 0}, {m.our_chips}]")
    return Study("match_train", {**resolved, "defaults": r.defaults()}, {
        "rows": rows, "their_step_time_s": m.their_step_time_s, "our_chips": m.our_chips,
        "our_step_time_s": m.our_step_time_s, "tried": tried, "power_and_cost": m.power_and_cost(),
        "answer": bound or f"no count of {ours} up to {max_factor:g}x their chips reaches their step time"})


def pr_system(m: Any, side: str) -> str | None:
    sid: str | None = m.their_system if side == "theirs" else m.our_system
    return sid


def plan_train_mixed(inputs: Mapping[str, Any], catalog: Catalog, progress: ProgressFn | None) -> Study:
    from dataclasses import asdict

    from fleetwise.api import core as api
    from fleetwise.search.fleet import parse_fleet
    from fleetwise.search.serialize import plan_dict

    why = "a mixed fleet's pipelines are searched whole, each chip type on its catalog system"
    r = Inputs("plan_train_mixed", inputs, TRAIN_INPUTS["plan_train_mixed"],
               {"pinned": "plan flags (--tp, --pp, ...) do not apply to a mixed fleet: " + why,
                "objective": "mixed fleets are ranked by step time only",
                "tokens": "days to train are not reported for mixed fleets",
                "chips": "the fleet (--hardware HW:N,HW:M) gives the chip counts",
                "system": why, "sites": why, "site_link_gbit": why, "site_link_rtt_ms": why,
                "attention_kernel": "mixed fleets are modelled with the flash kernel only"})
    model = r.req_text("model")
    raw = r.data.get("fleet")
    if isinstance(raw, list):
        raw = ",".join(f"{x[0]}:{x[1]}" if isinstance(x, (list, tuple)) and len(x) == 2 else "?" for x in raw)
    if not isinstance(raw, str):
        raise SpecError(f"plan_train_mixed: fleet (--hardware) must be 'HW:N,HW:M' or [[HW, N], ...] (got {echo(raw)})")
    parts = parse_fleet(raw, catalog)
    fleet = {p.accel.id: p.chips for p in parts}
    seq_len = r.whole("seq_len", 4096) or 4096
    precision = r.text("precision", "bf16", choices=PRECISIONS) or "bf16"
    gb = r.whole("global_batch")
    top = r.whole("top", 5) or 5
    cmp = api.compare_mixed_training(model, fleet, progress=progress, seq_len=seq_len, global_batch=gb,
                                     precision=precision, top=top, catalog=catalog)  # type: ignore[arg-type]
    total = sum(fleet.values())
    resolved = {"model": model, "model_id": api.resolve_model(catalog, model).id,
                "fleet": [[k, v] for k, v in fleet.items()], "chips": total, "seq_len": seq_len,
                "global_batch": cmp.global_batch, "global_batch_rule": _gb_rule(gb is not None),
                "tokens_per_step": seq_len * cmp.global_batch, "precision": precision, "top": top,
                "systems": {p.accel.id: None if p.system is None else p.system.id for p in parts}}

    def single(x: Any) -> dict[str, Any] | None:
        return None if x is None else plan_dict(x)

    return Study("plan_train_mixed", {**resolved, "defaults": r.defaults()}, {
        "rows": [asdict(p) for p in cmp.mixed.best], "candidates_evaluated": cmp.mixed.candidates_evaluated,
        "search_seconds": round(cmp.mixed.search_seconds, 4),
        "alone": {k: single(v) for k, v in cmp.alone.items()},
        "same_total_chips": {k: single(v) for k, v in cmp.same_total.items()}, "verdict": cmp.verdict})


def _flag_mfu(rows: list[dict[str, Any]], chip_id: str) -> list[dict[str, Any]]:
    """Rows whose MFU is above the best published on the chip carry a ``plausibility`` note saying so."""
    from fleetwise.perf.plausibility import mfu_note

    for row in rows:
        note = mfu_note(chip_id, float(row["mfu"]))
        if note is not None:
            row["plausibility"] = note
    return rows


def _plan_input(r: Inputs) -> TrainingPlan:
    """The ``plan`` input of an explain/power study as a ``TrainingPlan`` (required)."""
    if not r.has("plan"):
        raise SpecError(f"{r.kind}: plan is required (plan flags --tp --pp --dp ..., or --plan STUDY.json)")
    return training_plan(r.data["plan"], f"{r.kind}.plan")
