"""Render API results as terminal tables or JSON (stable key order, plain floats)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fleetwise.catalog.loader import Catalog
from fleetwise.errors import InfeasibleError, UnknownIdError
from fleetwise.search.evaluate import PlanResult, TrainingSearch

GB = 1e9


def _dump(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def plan_dict(r: PlanResult) -> dict[str, Any]:
    return {
        "plan": r.plan.model_dump(),
        "chips": r.chips,
        "step_time_s": round(r.step_time_s, 6),
        "tokens_per_s_per_chip": round(r.tokens_per_s_per_chip, 3),
        "mfu": round(r.mfu, 5),
        "model_tflops_per_chip": round(r.model_tflops_per_chip, 3),
        "memory_per_device_gb": round(r.memory_total_bytes / GB, 3),
        "memory_capacity_gb": round(r.memory_capacity_bytes / GB, 3),
        "days": None if r.days is None else round(r.days, 4),
        "breakdown_s": {k: round(v, 6) for k, v in r.breakdown_s.items()},
        "memory_gb": {k: round(v / GB, 4) for k, v in r.memory_bytes.items()},
        "comm_tiers": r.comm_tiers,
        "constants": r.constants,
        "energy": None if r.energy is None else _energy_dict(r.energy),
        "intervals": {k: v.to_json() for k, v in r.intervals().items()},
    }


def _energy_dict(e: Any) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(e)
    d["phases"] = {k: {"chips": v[0], "power_w": v[1], "seconds": v[2]} for k, v in e.phases.items()}
    return d


def _ties(plans: list[PlanResult]) -> list[bool]:
    from fleetwise.perf.intervals import ties_with_next

    return ties_with_next([r.step_time_s for r in plans], [r.intervals()["step_time_s"] for r in plans])


def search_dict(s: TrainingSearch) -> dict[str, Any]:
    return {
        "ties_with_next": _ties(s.best),
        "candidates_evaluated": s.candidates_evaluated,
        "feasible": s.feasible,
        "search_seconds": round(s.search_seconds, 4),
        "rejected_by": s.rejected_by,
        "best": [plan_dict(r) for r in s.best],
        "pareto": [plan_dict(r) for r in s.pareto],
        "pareto_time_energy": [plan_dict(r) for r in s.pareto_time_energy],
        "objective": s.objective,
        "assumptions": list(s.assumptions),
    }


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def _plan_row(r: PlanResult, with_days: bool) -> list[str]:
    p = r.plan
    row = [str(p.tp), str(p.pp), str(p.dp), str(p.cp), str(p.ep), str(p.micro_batch), str(p.vpp),
           p.recompute + (f"({p.recompute_layers_frac:.2f})" if p.recompute == "full" and p.recompute_layers_frac < 1
                          else ""),
           str(p.zero), "y" if p.sequence_parallel else "n", f"{r.step_time_s:.3f}",
           "{0.low:.3f}-{0.high:.3f}".format(r.intervals()["step_time_s"]), f"{r.tokens_per_s_per_chip:,.0f}",
           f"{100 * r.mfu:.1f}%", f"{r.memory_total_bytes / GB:.1f}",
           "-" if r.energy is None else f"{r.energy.energy_j_per_token:.3f}"]
    if with_days:
        row.append("-" if r.days is None else f"{r.days:.1f}")
    return row


HEADERS = ["tp", "pp", "dp", "cp", "ep", "mbs", "vpp", "recompute", "zero", "sp", "step s", "80% interval",
           "tok/s/chip", "MFU",
           "mem GB", "J/token"]


def training_search(s: TrainingSearch, as_json: bool, with_days: bool) -> None:
    if as_json:
        _dump(search_dict(s))
        return
    headers = HEADERS + (["days"] if with_days else []) + ["vs next"]
    ties = _ties(s.best)
    print(_table(headers, [_plan_row(r, with_days) + ["tie" if t else ""] for r, t in zip(s.best, ties, strict=True)]))
    if any(ties):
        print("tie: the lead over the next plan is inside the 80 % interval (perf/data/intervals.yaml); "
              "the model cannot tell them apart")
    rate = s.candidates_evaluated / max(s.search_seconds, 1e-9)
    print(f"\n{s.candidates_evaluated:,} candidates evaluated in {s.search_seconds:.2f} s ({rate:,.0f}/s); "
          f"{s.feasible:,} feasible; Pareto front (time vs memory headroom): {len(s.pareto)} plans")


def plan_result(r: PlanResult, as_json: bool) -> None:
    if as_json:
        _dump(plan_dict(r))
        return
    print(f"plan: {r.plan.label()}  recompute={r.plan.recompute} zero={r.plan.zero} "
          f"sp={r.plan.sequence_parallel}  ({r.chips} chips)")
    iv = r.intervals()
    print(f"step time {r.step_time_s:.4f} s [80 %: {iv['step_time_s'].low:.4f}-{iv['step_time_s'].high:.4f}]   "
          f"tokens/s/chip {r.tokens_per_s_per_chip:,.1f}   MFU {100 * r.mfu:.1f}% "
          f"[{100 * iv['mfu'].low:.1f}-{100 * iv['mfu'].high:.1f}%]  ({iv['step_time_s'].group})")
    print("\nstep time breakdown (s):")
    tier_of = {"tp_comm_s": "tp", "cp_comm_s": "cp", "ep_comm_s": "ep", "pp_comm_s": "pp", "dp_comm_s": "dp"}
    for k, v in r.breakdown_s.items():
        share = 100 * v / r.step_time_s if r.step_time_s else 0.0
        tier = r.comm_tiers.get(tier_of.get(k, ""), "")
        print(f"  {k:<14} {v:10.4f}  {share:5.1f}%  {tier}")
    print("\nconstants used: " + ", ".join(f"{k}={v}" for k, v in r.constants.items()))
    print(f"\nmemory per device (GB), {r.memory_total_bytes / GB:.1f} of {r.memory_capacity_bytes / GB:.0f}:")
    for k, v in r.memory_bytes.items():
        print(f"  {k:<14} {v / GB:10.2f}")


def _usd_per_mtok(e: Any, b: PlanResult) -> str:
    usd = e.step_cost_usd / (b.tokens_per_s_per_chip * b.chips * b.step_time_s) * 1e6
    return f"{usd:.2f}" + ("" if e.cost_breakdown_usd.get("hardware") else "*")


def comparison(results: dict[str, TrainingSearch | InfeasibleError], as_json: bool) -> None:
    if as_json:
        _dump({hw: (search_dict(r) if isinstance(r, TrainingSearch) else {"error": str(r)})
               for hw, r in results.items()})
        return
    rows = []
    for hw, r in results.items():
        if isinstance(r, TrainingSearch):
            b = r.best[0]
            e = b.energy
            rows.append([hw, b.plan.label(), f"{b.step_time_s:.3f}",
                         "{0.low:.3f}-{0.high:.3f}".format(b.intervals()["step_time_s"]),
                         f"{b.tokens_per_s_per_chip:,.0f}",
                         f"{b.tokens_per_s_per_chip * b.chips:,.0f}", f"{100 * b.mfu:.1f}%",
                         f"{b.memory_total_bytes / GB:.1f}",
                         "-" if e is None else f"{e.step_energy_j / e.step_time_s / 1e3:,.0f}",
                         "-" if e is None else f"{e.energy_j_per_token:.3f}",
                         "-" if e is None else _usd_per_mtok(e, b)])
        else:
            rows.append([hw, f"infeasible: {r}"[:60], "-", "-", "-", "-", "-", "-", "-", "-", "-"])
    print(_table(["hardware/system", "best plan", "step s", "80% interval", "tok/s/chip", "tok/s total", "MFU",
                  "mem GB",
                  "facility kW", "J/token", "$/Mtok"], rows))
    energies = [r.best[0].energy for r in results.values() if isinstance(r, TrainingSearch)]
    if any(e is not None and not e.cost_breakdown_usd.get("hardware") for e in energies):
        print("* electricity only: no chip price or rent in the catalog for that accelerator")


def match(m: Any, as_json: bool) -> None:
    from fleetwise.perf.intervals import intervals_of

    pc = m.power_and_cost()
    theirs_iv = intervals_of("training", m.theirs, {"step_time_s": m.their_step_time_s})["step_time_s"]
    ours_iv = (intervals_of("training", m.ours, {"step_time_s": m.our_step_time_s})["step_time_s"]
               if m.our_step_time_s is not None else None)
    if as_json:
        _dump({"ours": m.ours, "theirs": m.theirs, "their_chips": m.their_chips,
               "their_step_time_s": m.their_step_time_s, "our_chips": m.our_chips,
               "our_step_time_s": m.our_step_time_s, "tried": m.tried, "power_and_cost": pc,
               "intervals": {"their_step_time_s": theirs_iv.to_json(),
                             "our_step_time_s": None if ours_iv is None else ours_iv.to_json()}})
        return
    print(f"{m.their_chips} x {m.theirs}: best step {m.their_step_time_s:.3f} s "
          f"[80 %: {theirs_iv.low:.3f}-{theirs_iv.high:.3f}]")
    if m.our_chips is None:
        print(f"no count of {m.ours} up to {m.tried[-1][0] if m.tried else '?'} chips reaches it")
        return
    iv_text = "" if ours_iv is None else f" [80 %: {ours_iv.low:.3f}-{ours_iv.high:.3f}]"
    print(f"{m.our_chips} x {m.ours} reach it: step {m.our_step_time_s:.3f} s{iv_text} "
          f"({m.our_chips / m.their_chips:.2f} of ours per one of theirs)")
    for side in ("theirs", "ours"):
        v = pc[side]
        if v["facility_kw"] is None:
            continue
        note = "" if v["hardware_cost_known"] else " (electricity only: no chip price)"
        usd = f"${v['usd_per_hour']:,.0f}/h{note}"
        print(f"  {side:<6} facility {v['facility_kw']:,.0f} kW, {v['energy_j_per_token']:.3f} J/token, {usd}")


def validation(report: Any, as_json: bool) -> None:
    data = report.to_json()
    if as_json:
        _dump(data)
        return
    rows = []
    for c in data["cases"]:
        for metric, v in c["metrics"].items():
            loso = c.get("loso_errors", {}).get(metric)
            rows.append([c["id"], metric, f"{v['measured']:.4g}", f"{v['predicted']:.4g}",
                         f"{v['low']:.4g}-{v['high']:.4g}" if "low" in v else "-", f"{100 * v['error']:+.1f}%"]
                        + ([f"{100 * loso:+.1f}%" if loso is not None else "-"] if "loso_errors" in c else []))
    headers = (["case", "metric", "measured", "predicted", "80% interval", "error"]
               + (["loso error"] if report.loso_errors else []))
    print(_table(headers, rows))
    for title, key in (("summary (in-sample)", "summary"), ("leave one source out", "summary_leave_one_source_out")):
        if key not in data:
            continue
        print(f"\n{title}:")
        for g, s in data[key].items():
            print(f"  {g:<10} n={s['count']:3d}  median |err| {100 * s['median_ape']:.1f}%"
                  f"  mean {100 * s['mean_ape']:.1f}%  within 10% {100 * s['within_10']:.0f}%"
                  f"  within 25% {100 * s['within_25']:.0f}%"
                  f"  worst {s['worst']['id']} ({100 * s['worst']['error']:+.0f}%)"
                  + (f"  80% interval coverage {100 * s['interval_coverage']:.0f}%"
                     f" (median width {100 * s['interval_median_width']:.0f}%)" if "interval_coverage" in s else ""))
    for e in data["errors"]:
        print(f"  not predicted: {e['id']}: {e['message']}")


def catalog(cat: Catalog, args: argparse.Namespace) -> None:
    if args.action == "list":
        kinds = [args.kind] if args.kind else ["accelerators", "systems", "fabrics", "models"]
        for kind in kinds:
            print(f"{kind}:")
            for id_, spec in sorted(cat.kind(kind).items()):
                print(f"  {id_:<36} {getattr(spec, 'name', '')}")
        return
    for kind in ("accelerators", "systems", "fabrics", "models"):
        found = cat.kind(kind).get(args.id)
        if found is not None:
            print(f"# {kind}/{args.id}  (from {cat.origin[f'{kind}/{args.id}']})")
            print(json.dumps(found.model_dump(exclude_none=True), indent=2))
            return
    known = sorted(k for kind in ("accelerators", "systems", "fabrics", "models") for k in cat.kind(kind))
    raise UnknownIdError("catalog", args.id, known)


def mixed_training(cmp: Any, as_json: bool) -> None:
    """A mixed fleet's best pipelines next to the single-type plans they compete with."""
    from dataclasses import asdict

    def single(r: PlanResult | None) -> dict[str, Any] | None:
        return None if r is None else plan_dict(r)

    if as_json:
        _dump({
            "mixed": [asdict(p) for p in cmp.mixed.best],
            "candidates_evaluated": cmp.mixed.candidates_evaluated,
            "search_seconds": round(cmp.mixed.search_seconds, 4),
            "alone": {k: single(v) for k, v in cmp.alone.items()},
            "same_total_chips": {k: single(v) for k, v in cmp.same_total.items()},
            "verdict": cmp.verdict,
        })
        return
    rows = []
    for p in cmp.mixed.best:
        rows.append([f"{p.first}->{p.second}", str(p.tp), str(p.dp),
                     " ".join(f"{k.split('_')[-1]}:{v}st/{p.layers[k]}L" for k, v in p.stages.items()),
                     str(p.micro_batch), p.recompute, f"{p.step_time_s:.3f}", f"{p.tokens_per_s_per_chip:,.0f}",
                     " ".join(f"{v:.0f}" for v in p.memory_gb.values())])
    print(_table(["pipeline", "tp", "dp", "stages/layers", "mbs", "recompute", "step s", "tok/s/chip", "mem GB"],
                 rows))
    print("\nsingle-type plans:")
    for label, group in (("alone", cmp.alone), ("same total chips", cmp.same_total)):
        for hw, r in group.items():
            desc = "no feasible plan" if r is None else f"{r.chips} chips {r.plan.label()} step {r.step_time_s:.3f} s"
            print(f"  {label:<17} {hw:<24} {desc}")
    print(f"\n{cmp.verdict}")
