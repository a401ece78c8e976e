"""Render studies as terminal tables (``--json`` prints the study itself, see ``fleetwise.study``).

Every renderer reads only the study: the resolved inputs it echoes first, then the rows. Plans show every
knob that changes the result (overlaps, rank order, recompute fraction), so no two rows look the same.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fleetwise.catalog.loader import Catalog, left_out
from fleetwise.errors import UnknownIdError
from fleetwise.study import Study

GB = 1e9


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def job_line(s: Study) -> str:
    """The resolved training job, defaults and how they were chosen included."""
    i = s.inputs
    where = i.get("hardware") or i.get("systems") or i.get("ours") or ""
    if isinstance(where, list):  # compare train: several accelerators or systems
        where = "each of " + ", ".join(where)
    sys_ = f" (system {i['system']})" if i.get("system") else ""
    chips = f"{i['chips']} x " if i.get("chips") and where else ""
    extra = []
    if i.get("sites", 1) and i.get("sites", 1) > 1:
        extra.append(f"{i['sites']} sites over {i.get('site_link_gbit')} Gbit/s, RTT {i.get('site_link_rtt_ms')} ms")
    if i.get("tokens"):
        extra.append(f"{i['tokens']:.3g} tokens in all")
    if i.get("lora_rank"):
        extra.append(f"LoRA fine-tune, rank {i['lora_rank']} (base weights frozen; MFU counts forward +"
                     " activation gradients)")
    model = i.get("model_id") or i.get("model")
    return (f"{model} on {chips}{where}{sys_}: seq {i['seq_len']}, global batch {i['global_batch']} "
            f"({i['global_batch_rule']}; {i['tokens_per_step'] / 2**20:.2f}M tokens/step), {i['precision']}, "
            f"{i.get('attention_kernel', 'flash')} attention" + "".join(f"; {x}" for x in extra))


def _recompute(p: dict[str, Any]) -> str:
    frac = p.get("recompute_layers_frac", 1.0)
    return str(p["recompute"]) + (f"({frac:.2f})" if p["recompute"] == "full" and frac < 1 else "")


def _overlap(p: dict[str, Any]) -> str:
    on = [k for k, f in (("tp", "tp_comm_overlap"), ("ep", "ep_comm_overlap")) if p.get(f)]
    return "+".join(on) or "-"


def _order(p: dict[str, Any]) -> str:
    return "dp-in" if p.get("rank_order", "tp-cp-dp-pp") == "tp-cp-dp-pp" else "pp-in"


def plan_label(p: dict[str, Any]) -> str:
    """A plan's every field, short: ``tp8 pp4 dp2 cp1 ep1 mbs1 vpp5 selective zero1 sp ovl:tp order:dp-in``."""
    return (f"tp{p['tp']} pp{p['pp']} dp{p['dp']} cp{p['cp']} ep{p['ep']} mbs{p['micro_batch']} vpp{p['vpp']} "
            f"{_recompute(p)} zero{p['zero']} {'sp' if p['sequence_parallel'] else 'no-sp'} ovl:{_overlap(p)} "
            f"order:{_order(p)}")


def _plan_row(r: dict[str, Any], with_days: bool) -> list[str]:
    p = r["plan"]
    e = r.get("energy")
    row = [str(p["tp"]), str(p["pp"]), str(p["dp"]), str(p["cp"]), str(p["ep"]), str(p["micro_batch"]),
           str(p["vpp"]), _recompute(p), str(p["zero"]), "y" if p["sequence_parallel"] else "n", _overlap(p),
           _order(p), f"{r['step_time_s']:.3f}", _interval(r, "step_time_s"),
           f"{r['tokens_per_s_per_chip']:,.0f}", f"{100 * r['mfu']:.1f}%",
           f"{r['memory_per_device_gb']:.1f}", "-" if e is None else f"{e['energy_j_per_token']:.3f}"]
    if with_days:
        row.append("-" if r.get("days") is None else f"{r['days']:.1f}")
    return row


HEADERS = ["tp", "pp", "dp", "cp", "ep", "mbs", "vpp", "recompute", "zero", "sp", "overlap", "order", "step s",
           "80% interval", "tok/s/chip", "MFU", "mem GB", "J/token"]


def _interval(r: dict[str, Any], metric: str) -> str:
    iv = (r.get("intervals") or {}).get(metric)
    return "-" if not iv else f"{iv['low']:.3f}-{iv['high']:.3f}"


def training_search(s: Study) -> None:
    with_days = s.inputs.get("tokens") is not None
    print(job_line(s) + f"; ranked by {s.inputs['objective']}")
    ties = [bool(r.get("ties_with_next")) for r in s.rows]
    print(_table(HEADERS + (["days"] if with_days else []) + ["tie"],
                 [_plan_row(r, with_days) + ["tie" if t else ""] for r, t in zip(s.rows, ties, strict=True)]))
    if any(ties):
        print("tie: the lead over the next plan is under the model's 80 % error on such leads (measured plan "
              "sweeps, perf/data/intervals.yaml 'lead'): the model cannot tell them apart")
    _plausibility(s.rows)
    res = s.results
    rate = res["candidates_evaluated"] / max(res["search_seconds"], 1e-9)
    print(f"\n{res['candidates_evaluated']:,} candidates evaluated in {res['search_seconds']:.2f} s ({rate:,.0f}/s); "
          f"{res['feasible']:,} feasible; Pareto front (time vs memory headroom): {len(res['pareto'])} plans")
    print("overlap: TP/EP communication overlapped; order: dp-in = data-parallel replicas inside the scale-up "
          "domain before pipeline stages, pp-in = stages first")


def _plausibility(rows: list[dict[str, Any]]) -> None:
    """One line when any row's MFU is above the best published on its chip (perf/plausibility.py)."""
    flagged = [r for r in rows if r.get("plausibility")]
    if flagged:
        print(f"note ({len(flagged)} of {len(rows)} rows): {flagged[0]['plausibility']['why']}")


def plan_result(s: Study) -> None:
    r = s.rows[0]
    _plausibility([r])
    print(job_line(s))
    print(f"plan: {plan_label(r['plan'])}  ({r['chips']} chips)")
    print(f"step time {r['step_time_s']:.6f} s (80 % interval {_interval(r, 'step_time_s')})   "
          f"tokens/s/chip {r['tokens_per_s_per_chip']:,.1f}   MFU {100 * r['mfu']:.1f}%")
    print("\nstep time breakdown (s):")
    tier_of = {"tp_comm_s": "tp", "cp_comm_s": "cp", "ep_comm_s": "ep", "pp_comm_s": "pp", "dp_comm_s": "dp"}
    for k, v in r["breakdown_s"].items():
        share = 100 * v / r["step_time_s"] if r["step_time_s"] else 0.0
        tier = r["comm_tiers"].get(tier_of.get(k, ""), "")
        print(f"  {k:<14} {v:10.4f}  {share:5.1f}%  {tier}")
    print("\nconstants used: " + ", ".join(f"{k}={v}" for k, v in r["constants"].items()))
    where = {"first": ", on the first pipeline stage (embedding, most micro-batches in flight)",
             "last": ", on the last pipeline stage (LM head, logits and loss)"}.get(r.get("memory_stage", ""), "")
    print(f"\nmemory per device (GB), {r['memory_per_device_gb']:.1f} of {r['memory_capacity_gb']:.0f}{where}:")
    for k, v in r["memory_gb"].items():
        print(f"  {k:<14} {v:10.2f}")


def _usd_per_mtok(r: dict[str, Any]) -> str:
    e = r["energy"]
    usd = e["step_cost_usd"] / (r["tokens_per_s_per_chip"] * r["chips"] * r["step_time_s"]) * 1e6
    return f"{usd:.2f}" + ("" if e["cost_breakdown_usd"].get("hardware") else "*")


def comparison(s: Study) -> None:
    print(job_line(s))
    _plausibility([r for r in s.rows if r["rank"] == 0])
    rows = []
    for r in s.rows:
        if r["rank"] != 0:
            continue
        e = r.get("energy")
        rows.append([r["target"], plan_label(r["plan"]), f"{r['step_time_s']:.3f}",
                     f"{r['tokens_per_s_per_chip']:,.0f}", f"{r['tokens_per_s_per_chip'] * r['chips']:,.0f}",
                     f"{100 * r['mfu']:.1f}%", f"{r['memory_per_device_gb']:.1f}",
                     "-" if e is None else f"{e['step_energy_j'] / e['step_time_s'] / 1e3:,.0f}",
                     "-" if e is None else f"{e['energy_j_per_token']:.3f}", "-" if e is None else _usd_per_mtok(r)])
    for target, msg in s.results["infeasible"].items():
        rows.append([target, f"infeasible: {msg}"[:60], "-", "-", "-", "-", "-", "-", "-", "-"])
    print(_table(["hardware/system", "best plan", "step s", "tok/s/chip", "tok/s total", "MFU", "mem GB",
                  "facility kW", "J/token", "$/Mtok"], rows))
    print("\n$/Mtok = electricity + hardware, the hardware priced by:")
    for r in s.rows:
        e = r.get("energy")
        if r["rank"] == 0 and e is not None:
            star = "" if e["cost_breakdown_usd"].get("hardware") else "  (*: electricity only)"
            print(f"  {r['target']:<28} {e.get('hardware_price')}{star}")


def match(s: Study) -> None:
    res, i = s.results, s.inputs
    print(job_line(s))
    print(f"{i['their_chips']} x {i['theirs']}: best step {res['their_step_time_s']:.3f} s")
    if res["our_chips"] is None:
        tried = res["tried"]
        print(f"no count of {i['ours']} up to {tried[-1][0] if tried else '?'} chips reaches it")
        return
    print(f"{res['our_chips']} x {i['ours']} reach it: step {res['our_step_time_s']:.3f} s "
          f"({res['our_chips'] / i['their_chips']:.2f} of ours per one of theirs)")
    print(f"  {res['answer']}")
    for side in ("theirs", "ours"):
        v = res["power_and_cost"][side]
        if v["facility_kw"] is None:
            continue
        note = f" (hardware: {v['hardware_price']})"
        print(f"  {side:<6} facility {v['facility_kw']:,.0f} kW, {v['energy_j_per_token']:.3f} J/token, "
              f"${v['usd_per_hour']:,.0f}/h{note}")


def validation(s: Study) -> None:
    data = s.results
    rows = []
    for c in data["cases"]:
        for metric, v in c["metrics"].items():
            loso = c.get("loso_errors", {}).get(metric)
            rows.append([c["id"], metric, f"{v['measured']:.4g}", f"{v['predicted']:.4g}",
                         f"{v['low']:.4g}-{v['high']:.4g}" if "low" in v else "-", f"{100 * v['error']:+.1f}%"]
                        + ([f"{100 * loso:+.1f}%" if loso is not None else "-"] if "loso_errors" in c else []))
    headers = (["case", "metric", "measured", "predicted", "80% interval", "error"]
               + (["loso error"] if s.inputs["loso"] else []))
    print(_table(headers, rows))
    for title, key in (("summary (in-sample)", "summary"), ("leave one source out", "summary_leave_one_source_out")):
        if key not in data:
            continue
        print(f"\n{title}:")
        for g, v in data[key].items():
            if g == "sweeps":
                print(f"  {g:<10} n={v['count']:3d}  median regret {100 * v['median_regret']:.1f}%"
                      f"  max {100 * v['max_regret']:.1f}%  pick within 5% {100 * v['within_5']:.0f}%"
                      f"  median spearman {v['median_spearman']:.2f}")
                continue
            print(f"  {g:<10} n={v['count']:3d}  median |err| {100 * v['median_ape']:.1f}%"
                  f"  mean {100 * v['mean_ape']:.1f}%  within 10% {100 * v['within_10']:.0f}%"
                  f"  within 25% {100 * v['within_25']:.0f}%"
                  f"  worst {v['worst']['id']} ({100 * v['worst']['error']:+.0f}%)")
    for e in data["errors"]:
        print(f"  not predicted: {e['id']}: {e['message']}")
    for e in data["invalid"]:
        print(f"  invalid: {e['message']}")


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
    hit = left_out(args.id)  # a reference entry left out on purpose: say why
    if hit is not None:
        raise UnknownIdError(hit[0], args.id, known, not_modelled=hit[1])
    raise UnknownIdError("catalog", args.id, known)


def mixed_training(s: Study) -> None:
    """A mixed fleet's best pipelines next to the single-type plans they compete with."""
    i, res = s.inputs, s.results
    print(f"{i.get('model_id') or i['model']} on {', '.join(f'{a}:{n}' for a, n in i['fleet'])}: seq {i['seq_len']}, "
          f"global batch {i['global_batch']} ({i['global_batch_rule']}), {i['precision']}")
    rows = []
    for p in s.rows:
        rows.append([f"{p['first']}->{p['second']}", str(p["tp"]), str(p["dp"]),
                     " ".join(f"{k.split('_')[-1]}:{v}st/{p['layers'][k]}L" for k, v in p["stages"].items()),
                     str(p["micro_batch"]), p["recompute"], str(p["zero"]), f"{p['step_time_s']:.3f}",
                     f"{p['tokens_per_s_per_chip']:,.0f}", " ".join(f"{v:.0f}" for v in p["memory_gb"].values())])
    print(_table(["pipeline", "tp", "dp", "stages/layers", "mbs", "recompute", "zero", "step s", "tok/s/chip",
                  "mem GB"], rows))
    print("\nsingle-type plans:")
    for label, group in (("alone", res["alone"]), ("same total chips", res["same_total_chips"])):
        for hw, r in group.items():
            desc = "no feasible plan" if r is None else \
                f"{r['chips']} chips {plan_label(r['plan'])} step {r['step_time_s']:.3f} s"
            print(f"  {label:<17} {hw:<24} {desc}")
    print(f"\n{res['verdict']}")
