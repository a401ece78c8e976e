"""Training placement: which sites train one job, and whether splitting it across two sites pays.

Per site: the training search's fastest plan on the chips on hand → days, cost (chip-hours + energy at the
site's price) and carbon (site grid). Across two sites: synchronous data parallelism over the site link (the
training model's ``sites=2`` path) versus DiLoCo-style training (each site runs its own inner steps; every H
steps an outer all-reduce of int8 pseudo-gradients: [2(W−1)/W·P·b/B + 2(W−1)·RTT] per outer step, research
§4.9; Douillard et al. 2023). Entry point: ``place_training(scenario, problem, catalog)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fleetwise.catalog.loader import Catalog
from fleetwise.errors import FleetwiseError, InfeasibleError, SpecError
from fleetwise.perf.model_math import param_counts
from fleetwise.place.network import default_rtt_model, great_circle_km, throughput_model
from fleetwise.place.problem import PlacementProblem
from fleetwise.place.spec import Scenario, TrainingSpec

HOUR_S = 3600.0
_Single = tuple["SiteRun", int, int, float, float]  # (run, site, chip type, step s, IT J per step)


@dataclass(frozen=True, slots=True)
class SiteRun:
    """One way to run the job: where, how long, what it costs and emits."""

    how: str
    sites: tuple[str, ...]
    chips: int
    step_time_s: float
    days: float
    cost_usd: float
    energy_mwh: float
    co2_t: float
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"how": self.how, "sites": list(self.sites), "chips": self.chips, "step_time_s": self.step_time_s,
                "days": self.days, "cost_usd": self.cost_usd, "energy_mwh": self.energy_mwh, "co2_t": self.co2_t,
                "note": self.note}


def diloco_sync_s(params: float, bytes_per_param: float, workers: int, link_bytes_per_s: float, rtt_s: float) -> float:
    """Seconds of one outer synchronisation: ring all-reduce of the pseudo-gradients over the WAN."""
    w = workers
    return 2.0 * (w - 1) / w * params * bytes_per_param / link_bytes_per_s + 2.0 * (w - 1) * rtt_s


def diloco_bandwidth_for_share(params: float, bytes_per_param: float, workers: int, inner_step_s: float,
                               inner_steps: int, rtt_s: float, compute_share: float) -> float:
    """Link bytes/s at which compute is ``compute_share`` of the time (inf if the RTT alone exceeds the budget)."""
    budget = inner_steps * inner_step_s * (1.0 / compute_share - 1.0) - 2.0 * (workers - 1) * rtt_s
    if budget <= 0:
        return float("inf")
    return 2.0 * (workers - 1) / workers * params * bytes_per_param / budget


def _site_run(t: TrainingSpec, p: PlacementProblem, s: int, k: int, chips: int, catalog: Catalog,
              sites: int = 1, link: object | None = None, gbs: int | None = None) -> tuple[float, float]:
    """(step time s, IT energy J per step) of the fastest plan on ``chips`` of chip ``k``."""
    from fleetwise.perf.setup import make_training_setup
    from fleetwise.plan import TrainingJob
    from fleetwise.search.evaluate import search_training
    from fleetwise.search.space import SearchSpace

    accel = catalog.accelerator(p.chip_ids[k])
    job = TrainingJob(seq_len=t.seq_len, global_batch=gbs or t.global_batch or max(1, 4 * 2**20 // t.seq_len))
    setup = make_training_setup(catalog.model(t.model, "training.model"), accel, catalog.default_system(accel.id),
                                job, sites=sites, site_link=link)  # type: ignore[arg-type]
    r = search_training(setup, SearchSpace(chips=chips), top=1)
    if not r.best:
        raise InfeasibleError(f"training.model {t.model}: no plan fits {chips} x {accel.id}")
    best = r.best[0]
    e = best.energy
    it_j = (e.step_energy_j / e.pue) if e is not None else 0.0
    return best.step_time_s, it_j


def _price(p: PlacementProblem, s: int, k: int, chips: int, hours: float, it_j_per_s: float) -> tuple[float, float,
                                                                                                       float]:
    kwh = it_j_per_s * p.pue[s] * hours * HOUR_S / 3.6e6
    cost = chips * p.own_usd_per_chip_hour[s, k] * hours + kwh * p.usd_per_kwh[s]
    return cost, kwh / 1e3, kwh * p.gco2_per_kwh[s] / 1e6


def place_training(sc: Scenario, p: PlacementProblem, catalog: Catalog) -> dict[str, object]:
    """Every single-site run of ``sc.training``, then the two best sites split by sync DP and by DiLoCo."""
    if sc.training is None:
        raise SpecError(f"scenario {sc.name}: no training section (give training: {{model, tokens}})")
    t = sc.training
    model = catalog.model(t.model, "training.model")
    gbs = t.global_batch or max(1, 4 * 2**20 // t.seq_len)
    steps = t.tokens / (gbs * t.seq_len)
    runs: list[SiteRun] = []
    single: list[_Single] = []
    for s in np.nonzero(~p.site_is_edge)[0]:
        for k in np.nonzero(p.on_hand[s] > 0)[0]:
            n = int(p.on_hand[s, k])
            try:
                step, it_j = _site_run(t, p, int(s), int(k), n, catalog, gbs=gbs)
            except FleetwiseError:
                continue
            hours = steps * step / HOUR_S
            cost, mwh, co2 = _price(p, int(s), int(k), n, hours, it_j / step)
            run = SiteRun("single site", (p.site_ids[s],), n, step, hours / 24, cost, mwh, co2)
            runs.append(run)
            single.append((run, int(s), int(k), step, it_j))
    if not runs:
        raise SpecError(f"training.model {t.model}: no site has chips on which a plan fits")
    single.sort(key=lambda r: r[0].days)
    out: dict[str, object] = {"model": t.model, "tokens": t.tokens, "global_batch": gbs, "steps": steps}
    if len(single) >= 2:
        runs.append(_diloco(t, p, float(param_counts(model).total(model)), single[0], single[1], steps))
        same = [(x, y) for i, x in enumerate(single) for y in single[i + 1:] if x[2] == y[2]]
        if same:
            runs.append(_sync_dp(t, p, catalog, same[0][0], same[0][1], gbs, steps))
    out["runs"] = [r.to_dict() for r in sorted(runs, key=lambda r: r.days)]
    return out


def _link(t: TrainingSpec, p: PlacementProblem, sa: int, sb: int) -> tuple[float, float]:
    """(RTT s, Gbit/s) between two sites: the distance model and the measured-throughput fit (or the spec)."""
    km = float(great_circle_km(p.site_lat[sa], p.site_lon[sa], p.site_lat[sb], p.site_lon[sb]))
    return float(default_rtt_model().rtt_ms(km)) / 1e3, t.link_gbit or throughput_model().gbit_per_s(km)


def _sync_dp(t: TrainingSpec, p: PlacementProblem, catalog: Catalog, a: _Single, b: _Single, gbs: int,
             steps: float) -> SiteRun:
    """Synchronous data parallelism over the two sites' link (same chip type): the training model's 2-site path."""
    from fleetwise.catalog.types import SiteLink

    (ra, sa, ka, _, _), (rb, sb, _, _, _) = a, b
    rtt_s, gbit = _link(t, p, sa, sb)
    names, chips = (p.site_ids[sa], p.site_ids[sb]), ra.chips + rb.chips
    how = "synchronous DP over the site link"
    try:
        link = SiteLink(gbit_per_s=gbit, rtt_ms=rtt_s * 1e3, efficiency=1.0)
        step, it_j = _site_run(t, p, sa, ka, chips, catalog, sites=2, link=link, gbs=gbs)
    except FleetwiseError as exc:
        return SiteRun(how, names, chips, float("inf"), float("inf"), 0.0, 0.0, 0.0, f"infeasible: {exc}")
    hours = steps * step / HOUR_S
    ca, ma, oa = _price(p, sa, ka, ra.chips, hours, it_j / step * ra.chips / chips)
    cb, mb, ob = _price(p, sb, ka, rb.chips, hours, it_j / step * rb.chips / chips)
    return SiteRun(how, names, chips, step, hours / 24, ca + cb, ma + mb, oa + ob,
                   f"{gbit:.1f} Gbit/s, RTT {rtt_s * 1e3:.0f} ms")


def _diloco(t: TrainingSpec, p: PlacementProblem, params: float, a: _Single, b: _Single, steps: float) -> SiteRun:
    """DiLoCo over two sites (any chips): the batch split by throughput, an outer all-reduce every H steps.

    Each site takes the share of the global batch its single-site throughput earns, so both finish an inner
    step together: inner step = 1 / Σ(1/step_i) (throughput taken as independent of the batch share).
    """
    (ra, sa, ka, step_a, j_a), (rb, sb, kb, step_b, j_b) = a, b
    rtt_s, gbit = _link(t, p, sa, sb)
    inner_s = 1.0 / (1.0 / step_a + 1.0 / step_b)
    sync = diloco_sync_s(params, t.sync_bytes_per_param, 2, gbit * 1e9 / 8, rtt_s)
    step = inner_s + sync / t.inner_steps
    hours = steps * step / HOUR_S
    busy = inner_s / step  # share of the time the chips compute (they idle-wait during the sync; counted busy)
    ca, ma, oa = _price(p, sa, ka, ra.chips, hours, j_a / step_a)
    cb, mb, ob = _price(p, sb, kb, rb.chips, hours, j_b / step_b)
    need = diloco_bandwidth_for_share(params, t.sync_bytes_per_param, 2, inner_s, t.inner_steps, rtt_s, 0.95)
    return SiteRun(f"DiLoCo (H={t.inner_steps}, {t.sync_bytes_per_param:g} B/param)",
                   (p.site_ids[sa], p.site_ids[sb]), ra.chips + rb.chips, step, hours / 24, ca + cb, ma + mb,
                   oa + ob, f"compute share {busy:.1%} at {gbit:.1f} Gbit/s, RTT {rtt_s * 1e3:.0f} ms; 95 % needs "
                            f"{need * 8 / 1e9:.2f} Gbit/s")
