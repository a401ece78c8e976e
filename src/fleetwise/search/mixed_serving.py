"""Serving on a mixed fleet: prefill on one chip type, decode on another, the KV cache moved between the pools.

Entry points (fleets come from ``search.fleet.parse_fleet``): ``best_single`` (one chip type's best
plan on a chip count); ``search_mixed_serving(model, fleet, workload, catalog)`` → ``MixedComparison``.

A mixed plan pairs whole prefill engines of type A with whole decode engines of type B (both orders tried);
each prefill rank hands its prompt's KV shard to a decode rank over scale-out at the slower of the two NICs
(``network.collectives.Network.p2p_s``), inside the TTFT budget. Chips of either type left out of the pair
serve on their own with that type's best single-type plan. Every figure comes from each type's own calibrated
serving model, so a mix is priced exactly as the single-type plans it is compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from fleetwise.catalog.types import ModelArch
from fleetwise.errors import InfeasibleError
from fleetwise.perf.inference import ServingSetup, make_serving_setup
from fleetwise.search.fleet import FleetPart
from fleetwise.search.serving import ServingWorkload, search_serving
from fleetwise.search.systems import Deployment, PhaseOption, decode_options, deploy_pd, prefill_options

ALL_WEIGHTS = ("bf16", "fp8", "int8", "int4")  # the serving planner's set, so single and mixed plans match
REFINE_TOP = 6  # allocations re-priced exactly (leftover chips searched) after a linear first pass


@dataclass(frozen=True, slots=True)
class SingleType:
    """One chip type's best plan on a chip count (the better of the serving planner and a P/D EP search)."""

    accelerator_id: str
    chips: int
    goodput_rps: float
    label: str


def _setup(model: ModelArch, part: FleetPart) -> ServingSetup:
    return make_serving_setup(model, part.accel, part.system, expert_parallel=model.moe is not None)


def best_single(model: ModelArch, part: FleetPart, chips: int, w: ServingWorkload) -> SingleType:
    """The most goodput ``chips`` chips of ``part``'s type serve alone (0 when nothing fits)."""
    return _best_single_cached(model, part, chips, w)


@lru_cache(maxsize=4096)
def _best_single_cached(model: ModelArch, part: FleetPart, chips: int, w: ServingWorkload) -> SingleType:
    best = SingleType(part.accel.id, chips, 0.0, "none fits")
    if chips < 1:
        return best
    s = _setup(model, part)
    found = search_serving(s, ServingWorkload(w.input_tokens, w.output_tokens, w.ttft_s, w.tpot_s, chips=chips),
                           top=1).best
    if found and found[0].goodput_rps > best.goodput_rps:
        best = SingleType(part.accel.id, chips, found[0].goodput_rps, found[0].plan.label())
    try:
        dep = deploy_pd(prefill_options(s, w, chips, weights=ALL_WEIGHTS),
                        decode_options(s, w, chips, weights=ALL_WEIGHTS), chips, w)
    except InfeasibleError:
        return best
    if dep.goodput_rps > best.goodput_rps:
        best = SingleType(part.accel.id, chips, dep.goodput_rps,
                          f"{dep.prefill_engines}x {dep.prefill.label()} + {dep.decode_engines}x {dep.decode.label()}")
    return best


@dataclass(frozen=True, slots=True)
class MixedPlan:
    """Prefill engines on one type, decode engines on the other, and what each type's leftover chips serve."""

    prefill_type: str
    decode_type: str
    pair: Deployment
    leftover: tuple[SingleType, SingleType]  # (prefill type's, decode type's)

    @property
    def goodput_rps(self) -> float:
        return self.pair.goodput_rps + sum(x.goodput_rps for x in self.leftover)


@dataclass(frozen=True, slots=True)
class MixedComparison:
    """A mixed fleet's best plan against single-type plans on the same total and on each type's own chips."""

    workload: ServingWorkload
    fleet: tuple[tuple[str, int], ...]
    mixed: MixedPlan | None
    same_total: tuple[SingleType, ...]  # each type on all the fleet's chips
    alone: tuple[SingleType, ...]  # each type on its own chips (the fleet run as two clusters)
    notes: tuple[str, ...] = field(default=())

    @property
    def best_same_total(self) -> SingleType:
        return max(self.same_total, key=lambda x: x.goodput_rps)

    @property
    def split_fleet_rps(self) -> float:
        return sum(x.goodput_rps for x in self.alone)

    @property
    def mixed_rps(self) -> float:
        return self.mixed.goodput_rps if self.mixed else 0.0

    @property
    def gain_over_best_single(self) -> float:
        """Mixed goodput over the better single type's on the same total chips (> 1: the mix wins)."""
        ref = self.best_same_total.goodput_rps
        return self.mixed_rps / ref if ref > 0 else math.inf


def _pairs(pre: list[PhaseOption], dec: list[PhaseOption], n_pre: int, n_dec: int, w: ServingWorkload
           ) -> list[tuple[float, PhaseOption, PhaseOption, int, int]]:
    """(pair requests/s, prefill option, decode option, prefill engines, decode engines), balanced splits."""
    out = []
    for p in pre:
        pre_rps = p.engine_chips * p.tokens_per_s_per_chip / w.input_tokens
        for d in dec:
            dec_rps = d.engine_chips * d.tokens_per_s_per_chip / w.output_tokens
            for k_d in range(1, n_dec // d.engine_chips + 1):
                need = k_d * dec_rps / pre_rps
                for k_p in {max(1, math.floor(need)), math.ceil(need)}:
                    if k_p * p.engine_chips <= n_pre:
                        out.append((min(k_p * pre_rps, k_d * dec_rps), p, d, k_p, k_d))
    return out


def _mixed(model: ModelArch, a: FleetPart, b: FleetPart, w: ServingWorkload) -> MixedPlan | None:
    """Best plan with prefill on ``a`` and decode on ``b``; leftovers serve on their own."""
    sa, sb = _setup(model, a), _setup(model, b)
    pre = prefill_options(sa, w, a.chips, peer=sb, weights=ALL_WEIGHTS)
    dec = decode_options(sb, w, b.chips, weights=ALL_WEIGHTS)
    pairs = _pairs(pre, dec, a.chips, b.chips, w)
    if not pairs:
        return None
    # first pass: leftovers at the type's per-chip goodput on its whole count; then exact for the best few
    rate_a = best_single(model, a, a.chips, w).goodput_rps / a.chips
    rate_b = best_single(model, b, b.chips, w).goodput_rps / b.chips

    def linear(x: tuple[float, PhaseOption, PhaseOption, int, int]) -> float:
        rps, p, d, k_p, k_d = x
        return rps + rate_a * (a.chips - k_p * p.engine_chips) + rate_b * (b.chips - k_d * d.engine_chips)

    best: MixedPlan | None = None
    for rps, p, d, k_p, k_d in sorted(pairs, key=linear, reverse=True)[:REFINE_TOP]:
        left = (best_single(model, a, a.chips - k_p * p.engine_chips, w),
                best_single(model, b, b.chips - k_d * d.engine_chips, w))
        plan = MixedPlan(a.accel.id, b.accel.id, Deployment(p, d, k_p, k_d, rps, a.chips + b.chips), left)
        if best is None or plan.goodput_rps > best.goodput_rps:
            best = plan
    return best


def search_mixed_serving(model: ModelArch, fleet: list[FleetPart], w: ServingWorkload) -> MixedComparison:
    """The best mixed P/D plan (both orders) against each type on the total and on its own chips.

    Args:
        model: model architecture.
        fleet: two chip types and their counts (``parse_fleet``).
        w: workload: mean input/output tokens, TTFT/TPOT targets (s).
    """
    a, b = fleet
    total = a.chips + b.chips
    plans = [p for p in (_mixed(model, a, b, w), _mixed(model, b, a, w)) if p is not None]
    mixed = max(plans, key=lambda p: p.goodput_rps) if plans else None
    same = tuple(best_single(model, FleetPart(x.accel, x.system, total), total, w) for x in fleet)
    alone = tuple(best_single(model, x, x.chips, w) for x in fleet)
    notes = ("each prefill rank sends its KV shard to one decode rank over scale-out, at the slower NIC",
             "leftover chips of either type serve on their own with that type's best plan",
             "single-type plans: the better of the serving planner (co-located or P/D) and the P/D engine search")
    return MixedComparison(w, tuple((x.accel.id, x.chips) for x in fleet), mixed, same, alone, notes)


@dataclass(frozen=True, slots=True)
class FleetCost:
    """Chips of one type at nameplate power (upper bound while serving), with facility power and cost."""

    accelerator_id: str
    chips: int
    goodput_rps: float
    label: str
    nameplate_w: float
    facility_w: float
    usd_per_hour: float | None  # hardware + energy; None: no price or rent known for the chip


@dataclass(frozen=True, slots=True)
class ServingMatch:
    """How many of our chips serve the goodput of a reference fleet under the same SLOs."""

    workload: ServingWorkload
    ours: FleetCost
    theirs: FleetCost

    @property
    def chips_ratio(self) -> float:
        return self.ours.chips / self.theirs.chips


def fleet_cost(part: FleetPart, single: SingleType, site: str | None = None) -> FleetCost:
    """Nameplate and facility power and hourly cost of ``single.chips`` chips of ``part``'s type."""
    from fleetwise.energy.training import energy_setup
    from fleetwise.perf.setup import synthetic_system

    system = part.system or synthetic_system(part.accel)
    e = energy_setup(part.accel, system, site)
    nodes = math.ceil(single.chips / system.chips_per_node)
    if system.node_power_w is not None:
        nameplate = system.node_power_w * nodes
    else:
        nameplate = nodes * (system.chips_per_node * e.chip.max_w + e.node.host_w + e.node.network_w)
    facility = nameplate * (system.pue or e.site.pue)
    hw = e.usd_per_chip_hour
    usd = None if hw is None else hw * single.chips + facility / 1000.0 * e.site.usd_per_kwh
    return FleetCost(part.accel.id, single.chips, single.goodput_rps, single.label, float(nameplate),
                     float(facility), usd)


def match_serving(model: ModelArch, ours: FleetPart, theirs: FleetPart, w: ServingWorkload,
                  site: str | None = None) -> ServingMatch:
    """The fewest of our chips whose best plan serves at least the reference fleet's goodput.

    Args:
        model: model architecture.
        ours: our chip type (``chips`` is ignored).
        theirs: the reference chip type and count.
        w: workload and SLOs, the same for both fleets.
        site: site id for PUE and prices.

    Raises:
        InfeasibleError: either fleet meets the SLOs with no plan, or ours cannot reach theirs in 64x the chips.
    """
    ref = best_single(model, theirs, theirs.chips, w)
    if ref.goodput_rps <= 0:
        raise InfeasibleError(f"{theirs.accel.id} x{theirs.chips}: no plan meets TTFT {w.ttft_s * 1e3:g} ms and "
                              f"TPOT {w.tpot_s * 1e3:g} ms")

    def ok(n: int) -> bool:
        return best_single(model, ours, n, w).goodput_rps >= ref.goodput_rps * (1 - 1e-9)

    hi = max(1, theirs.chips)
    while not ok(hi):
        hi *= 2
        if hi > 64 * theirs.chips:
            raise InfeasibleError(f"{ours.accel.id}: {hi // 2} chips do not reach {ref.goodput_rps:.1f} req/s")
    lo = 0  # ok(lo) is False; goodput never falls as chips grow (a plan on n chips also runs on n + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    mine = best_single(model, ours, hi, w)
    return ServingMatch(w, fleet_cost(ours, mine, site), fleet_cost(theirs, ref, site))
