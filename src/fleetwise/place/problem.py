"""The serving-placement problem as arrays: sites x chip types, candidate plans, demand classes, RTT.

Entry points: ``PlacementProblem`` (everything the MILP needs, no solver objects), ``build_problem(scenario,
catalog)`` (candidate plans from the serving search per chip type and model; RTT measured or from the distance
model) and ``PlacementProblem.feasible_triples`` (which (demand, site, plan) routes meet TTFT/TPOT with the
network). Model: research/energy-network-placement.md §4.10.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.loader import Catalog
from fleetwise.catalog.types import Accelerator
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.place.network import default_rtt_model, great_circle_km, pair_rtt_ms, region
from fleetwise.place.spec import Scenario
from fleetwise.search.serving import ServingCandidate

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
HOUR_S = 3600.0
AMORTISE_HOURS = 4 * 8766.0 * 0.8  # 4-year life at 80 % use, as energy/data/sites.yaml node defaults


def _sourced_chip_usd_per_hour(accel: Accelerator, site_id: str) -> float | None:
    """Owned-chip cost per hour as every other cost in fleetwise prices it (energy/prices.py): the catalog's
    ``price_usd`` or the sourced purchase price amortised over 4 years at 80 % use (else on-demand rent)."""
    from fleetwise.energy.prices import hardware_cost

    return hardware_cost(accel, site_id, None, 4.0, 0.8).usd_per_chip_hour


@dataclass(frozen=True, slots=True)
class PlacementProblem:
    """Sites (S), chip types (K), plan kinds (P), demand classes (D); SI units, money per hour.

    A plan kind is one serving deployment of one model on one chip type (``plan_chip``), sized for one node,
    with the goodput, latencies and IT power the serving search predicts. Its replicas are integers per site.
    """

    site_ids: list[str]
    site_lat: FloatArray
    site_lon: FloatArray
    site_is_edge: BoolArray
    pue: FloatArray  # (S,)
    usd_per_kwh: FloatArray  # (S,)
    gco2_per_kwh: FloatArray  # (S,)
    power_limit_w: FloatArray  # (S,) facility W, inf = none
    egress_usd_per_gb: FloatArray  # (S,)
    chip_ids: list[str]
    on_hand: FloatArray  # (S, K) chips
    own_usd_per_chip_hour: FloatArray  # (S, K)
    rent_max: FloatArray  # (S, K) chips that can be rented
    rent_usd_per_chip_hour: FloatArray  # (S, K)
    plan_labels: list[str]
    plan_chip: IntArray  # (P,) index into chip_ids
    plan_model: list[str]
    plan_chips: FloatArray  # (P,) chips per replica
    plan_goodput_rps: FloatArray  # (P,) requests/s one replica serves within the SLOs at full load
    plan_ttft_s: FloatArray
    plan_tpot_s: FloatArray
    plan_it_w: FloatArray  # (P,) IT power of one replica at full load (chips, host, NICs, switches)
    demand_ids: list[str]
    demand_model: list[str]
    demand_lat: FloatArray
    demand_lon: FloatArray
    rate_rps: FloatArray  # (D,)
    ttft_slo_s: FloatArray
    tpot_slo_s: FloatArray
    access_rtt_s: FloatArray  # (D,)
    bytes_per_request: FloatArray  # (D,) response bytes sent to the user (egress)
    rtt_s: FloatArray  # (D, S) network RTT from the user region's metro point to the site
    utilisation: float = 0.85
    carbon_usd_per_t: float = 100.0
    allowed: BoolArray | None = None  # (D, S) routes a heuristic permits; None = all

    @property
    def queue_s(self) -> FloatArray:
        """Expected wait for prefill at the planned load (Pollaczek-Khinchine, M/D/1: rho/(2(1-rho)) services).

        One prefill server whose service time is the plan's TTFT: an upper bound, since pooled engines wait less.
        """
        rho = self.utilisation
        return np.asarray(rho / (2.0 * (1.0 - rho)) * self.plan_ttft_s)

    def latency_s(self) -> FloatArray:
        """(D, S, P) time to first token at the user: access + RTT + queueing + the plan's TTFT."""
        return np.asarray(self.access_rtt_s[:, None, None] + self.rtt_s[:, :, None]
                          + (self.queue_s + self.plan_ttft_s)[None, None, :])

    def site_has_chip(self) -> BoolArray:
        """(S, P) the site can hold replicas of the plan (chips on hand or to rent of its type)."""
        avail = (self.on_hand + self.rent_max) > 0
        return np.asarray(avail[:, self.plan_chip] & (self.plan_chips[None, :] <= (self.on_hand + self.rent_max)
                                                      [:, self.plan_chip]))

    def feasible_triples(self) -> BoolArray:
        """(D, S, P) routes that meet TTFT (with the network) and TPOT, for the demand's model, where allowed."""
        same_model = np.array([[dm == pm for pm in self.plan_model] for dm in self.demand_model], dtype=bool)
        ok = (self.latency_s() <= self.ttft_slo_s[:, None, None]) & same_model[:, None, :]
        ok &= (self.plan_tpot_s[None, :] <= self.tpot_slo_s[:, None])[:, None, :]
        ok &= self.site_has_chip()[None, :, :]
        if self.allowed is not None:
            ok &= self.allowed[:, :, None]
        return np.asarray(ok)

    def power_w(self) -> FloatArray:
        """(S, P) facility power of one replica at each site (IT power x PUE)."""
        return np.asarray(self.plan_it_w[None, :] * self.pue[:, None])

    def without_site(self, s: int) -> PlacementProblem:
        """The same problem with site ``s`` unable to host anything (for what-if and tests)."""
        z = self.on_hand.copy()
        r = self.rent_max.copy()
        z[s] = 0.0
        r[s] = 0.0
        return replace(self, on_hand=z, rent_max=r)


def _position(spec_region: str | None, lat: float | None, lon: float | None, field: str) -> tuple[float, float]:
    if spec_region is not None:
        r = region(spec_region, field)
        return r.lat, r.lon
    assert lat is not None and lon is not None
    return lat, lon


def _energy_defaults(key: str | None) -> tuple[float | None, float | None]:
    """(gCO2/kWh, USD/kWh) of a region key from region_energy.csv; None where the file has no figure."""
    import csv

    from fleetwise.place.network import DATA

    if key is None:
        return None, None
    with open(DATA / "region_energy.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["region_key"] == key:
                c, p = row["gco2_per_kwh"], row["usd_per_kwh"]
                return (float(c) if c else None), (float(p) if p else None)
    return None, None


@dataclass(frozen=True, slots=True)
class PlanKind:
    """One candidate from the serving search, as the MILP sees it."""

    label: str
    chip: str
    model: str
    chips: float
    goodput_rps: float
    ttft_s: float
    tpot_s: float
    it_w: float


def serving_candidates(catalog: Catalog, model: str, chip: str, node_chips: int, ttft_s: float, tpot_s: float,
                       input_tokens: float, output_tokens: float, top: int, objective: str = "cost"
                       ) -> list[ServingCandidate]:
    """The serving search (``search.serving.search_serving``) for one node of ``chip``; [] if no plan meets."""
    from fleetwise.energy.serving import serving_energy_setup
    from fleetwise.perf.inference import make_serving_setup
    from fleetwise.search.serving import ServingWorkload, search_serving

    accel = catalog.accelerator(chip)
    s = make_serving_setup(catalog.model(model, "model"), accel, catalog.default_system(accel.id))
    w = ServingWorkload(input_tokens, output_tokens, ttft_s, tpot_s, None, node_chips)
    return search_serving(s, w, top=top, objective=objective,  # type: ignore[arg-type]
                          energy=serving_energy_setup(s)).best


def candidate_plans(sc: Scenario, model: str, chip: str, catalog: Catalog, node_chips: int) -> list[PlanKind]:
    """The serving search's cheapest plans of ``model`` on ``chip`` for one node of chips, at two TTFT targets.

    Runs the serving search (analytic, no simulator replay) at the loosest SLO of the scenario's demand minus
    the access RTT, and at 30 % of it; the MILP then keeps, per route, only plans that meet that route's SLO.
    """
    if not sc.demand:
        raise SpecError("scenario: demand is empty: placement of serving needs at least one user region")
    loosest = max(d.ttft_ms - d.access_rtt_ms for d in sc.demand)
    tpot_ms = max(d.tpot_ms for d in sc.demand)
    out: dict[str, PlanKind] = {}
    seen: set[tuple[float, float, float]] = set()
    # a ladder of TTFT targets: the cheapest plans for the loosest SLO, then faster ones for near-SLO routes
    for share in (1.0, 0.3):
        kept = 0
        for c in serving_candidates(catalog, model, chip, node_chips, loosest * share / 1e3, tpot_ms / 1e3,
                                    sc.input_tokens, sc.output_tokens, 4 * sc.plans_per_chip):
            label = f"{model} on {c.plan.chips}x {chip}: {c.plan.label()}"
            key = (float(c.plan.chips), round(c.goodput_rps, 2), round(c.ttft_s * 1e3))
            if kept >= sc.plans_per_chip or label in out or key in seen or c.energy is None:
                continue
            seen.add(key)
            kept += 1
            j_it = float(c.energy["j_per_token"]) / float(c.energy["pue"])  # type: ignore[arg-type]
            out[label] = PlanKind(label, chip, model, float(c.plan.chips), c.goodput_rps, c.ttft_s, c.tpot_s,
                                  j_it * c.goodput_rps * sc.output_tokens)
    return list(out.values())


def site_arrays(sc: Scenario, catalog: Catalog, where: str = "scenario") -> PlacementProblem:
    """Site inventories, prices and positions of ``sc`` with no candidate plans (for training placement)."""
    return build_problem(sc, catalog, where, with_plans=False)


def build_problem(sc: Scenario, catalog: Catalog, where: str = "scenario", with_plans: bool = True
                  ) -> PlacementProblem:
    """Arrays of ``sc``: site inventories and prices, candidate plans per chip type and model, RTT per route."""
    chip_ids = sorted({k for s in sc.sites for k in (*s.chips, *s.rent)})
    for s in sc.sites:
        for k in (*s.chips, *s.rent, *s.chip_usd_per_hour):
            catalog.accelerator(k, f"{where}: sites.{s.id}.chips")
    n_s, n_k = len(sc.sites), len(chip_ids)
    on_hand, own, rent_max, rent_usd = (np.zeros((n_s, n_k)) for _ in range(4))
    pos, pue, price, carbon, power, egress = [], [], [], [], [], []
    for i, s in enumerate(sc.sites):
        pos.append(_position(s.region, s.lat, s.lon, f"{where}: sites.{s.id}.region"))
        c_def, p_def = _energy_defaults(s.region)
        g = s.gco2_per_kwh if s.gco2_per_kwh is not None else c_def
        p = s.usd_per_kwh if s.usd_per_kwh is not None else p_def
        if g is None or p is None:
            missing = "gco2_per_kwh" if g is None else "usd_per_kwh"
            raise SpecError(f"{where}: sites.{s.id}.{missing} is required: region_energy.csv has no figure for "
                            f"{s.region or 'a lat/lon site'}")
        pue.append(s.pue)
        carbon.append(g)
        price.append(p)
        power.append(s.power_kw * 1e3 if s.power_kw is not None else np.inf)
        egress.append(s.egress_usd_per_gb)
        for j, k in enumerate(chip_ids):
            accel = catalog.accelerator(k, f"{where}: sites.{s.id}.chips")
            on_hand[i, j] = s.chips.get(k, 0)
            if k in s.chip_usd_per_hour:
                own[i, j] = s.chip_usd_per_hour[k]
            elif (cost := _sourced_chip_usd_per_hour(accel, s.id)) is not None:
                own[i, j] = cost  # the catalog's price_usd, else the sourced purchase (or rent) in prices.yaml
            elif on_hand[i, j] > 0:
                raise SpecError(f"{where}: sites.{s.id}.chip_usd_per_hour.{k} is required: the catalog has no "
                                f"price for {k}")
            if k in s.rent:
                rent_max[i, j] = s.rent[k].max_chips
                rent_usd[i, j] = s.rent[k].usd_per_chip_hour
    models = [sc.model] + ([sc.cascade.model] if sc.cascade else [])
    plans: list[PlanKind] = []
    for k in chip_ids if with_plans else []:
        accel = catalog.accelerator(k)
        node = max(1, min(8, accel.scaleup_domain or 1))
        for m in models:
            plans += candidate_plans(sc, m, k, catalog, node)
    if not plans and with_plans:
        raise InfeasibleError(f"{where}: no serving plan of {', '.join(models)} meets the SLOs on any chip type "
                              f"({', '.join(chip_ids)})")
    return _assemble(sc, where, chip_ids, pos, pue, price, carbon, power, egress,
                     (on_hand, own, rent_max, rent_usd), plans)


def _assemble(sc: Scenario, where: str, chip_ids: list[str], pos: list[tuple[float, float]], pue: list[float],
              price: list[float], carbon: list[float], power: list[float], egress: list[float],
              stock: tuple[FloatArray, FloatArray, FloatArray, FloatArray], plans: list[PlanKind]
              ) -> PlacementProblem:
    ids, lat, lon, model, rate, ttft, tpot, access, dpos = [], [], [], [], [], [], [], [], []
    for d in sc.demand:
        p = _position(d.region, d.lat, d.lon, f"{where}: demand.{d.id}.region")
        share = 0.0 if sc.cascade is None else sc.cascade.resolved_share()
        split = [(sc.model, 1.0)] if sc.cascade is None else [(sc.model, 1.0 - share), (sc.cascade.model, share)]
        for m, share in split:
            ids.append(d.id if m == sc.model else f"{d.id}/{m}")
            model.append(m)
            rate.append(d.rate_rps * share)
            ttft.append(d.ttft_ms / 1e3)
            tpot.append(d.tpot_ms / 1e3)
            access.append(d.access_rtt_ms / 1e3)
            dpos.append(p)
            lat.append(p[0])
            lon.append(p[1])
    slat, slon = np.array([p[0] for p in pos]), np.array([p[1] for p in pos])
    dist = great_circle_km(np.array(lat)[:, None], np.array(lon)[:, None], slat[None, :], slon[None, :])
    rtt = default_rtt_model().rtt_ms(dist)
    edge = np.array([s.edge for s in sc.sites])[None, :]
    local = np.where(edge, sc.network.edge_rtt_ms, sc.network.metro_rtt_ms)
    rtt = np.where(dist < 50.0, local, rtt)  # same city: metro network (or the edge site), not a WAN path
    rtt = np.where(edge & (dist > sc.network.edge_radius_km), np.inf, rtt)  # edge sites serve their metro only
    demand_region = {d.id: d.region for d in sc.demand}
    for i, did in enumerate(ids):
        for j, s in enumerate(sc.sites):
            a, b = demand_region[did.split("/")[0]], s.region
            meas = pair_rtt_ms(a, b) if a and b and np.isfinite(rtt[i, j]) else None
            if meas is not None:
                rtt[i, j] = meas[0]
    overrides = {(o.a, o.b): o.rtt_ms for o in sc.network.rtt} | {(o.b, o.a): o.rtt_ms for o in sc.network.rtt}
    site_index = {s.id: j for j, s in enumerate(sc.sites)}
    for (a, b), v in overrides.items():
        if a not in site_index and a not in demand_region:
            raise SpecError(f"{where}: network.rtt: {a!r} is neither a site nor a demand id")
        if b in site_index:
            for i, did in enumerate(ids):
                if did.split("/")[0] == a:
                    rtt[i, site_index[b]] = v
    on_hand, own, rent_max, rent_usd = stock
    bytes_per_request = sc.output_tokens * 4.0  # ~4 bytes of UTF-8 text per token, streamed back (egress)
    return PlacementProblem(
        site_ids=[s.id for s in sc.sites], site_lat=slat, site_lon=slon,
        site_is_edge=np.array([s.edge for s in sc.sites]), pue=np.array(pue), usd_per_kwh=np.array(price),
        gco2_per_kwh=np.array(carbon), power_limit_w=np.array(power), egress_usd_per_gb=np.array(egress),
        chip_ids=chip_ids, on_hand=on_hand, own_usd_per_chip_hour=own, rent_max=rent_max,
        rent_usd_per_chip_hour=rent_usd, plan_labels=[p.label for p in plans],
        plan_chip=np.array([chip_ids.index(p.chip) for p in plans], dtype=np.int64),
        plan_model=[p.model for p in plans], plan_chips=np.array([p.chips for p in plans]),
        plan_goodput_rps=np.array([p.goodput_rps for p in plans]), plan_ttft_s=np.array([p.ttft_s for p in plans]),
        plan_tpot_s=np.array([p.tpot_s for p in plans]), plan_it_w=np.array([p.it_w for p in plans]),
        demand_ids=ids, demand_model=model, demand_lat=np.array(lat), demand_lon=np.array(lon),
        rate_rps=np.array(rate), ttft_slo_s=np.array(ttft), tpot_slo_s=np.array(tpot),
        access_rtt_s=np.array(access), bytes_per_request=np.full(len(ids), bytes_per_request),
        rtt_s=np.asarray(rtt) / 1e3, utilisation=sc.utilisation, carbon_usd_per_t=sc.carbon_usd_per_t)


def random_problem(rng: np.random.Generator, sites: int, users: int, plans: int, chip_types: int = 3,
                   load: float = 0.3) -> PlacementProblem:
    """A synthetic problem of the given size (for benchmarks and property tests): sites and users scattered
    over a 3,000 km box, plan kinds with random goodput/latency/power, demand at ``load`` of the chips on hand.
    """
    slat, slon = rng.uniform(22, 42, sites), rng.uniform(100, 122, sites)
    ulat, ulon = rng.uniform(22, 42, users), rng.uniform(100, 122, users)
    chip = rng.integers(0, chip_types, plans)
    chips = rng.choice([1.0, 2.0, 4.0, 8.0], plans)
    goodput = chips * rng.uniform(0.5, 5.0, plans)
    on_hand = np.where(rng.random((sites, chip_types)) < 0.6, rng.integers(8, 129, (sites, chip_types)), 0).astype(
        float)
    on_hand[np.arange(sites), rng.integers(0, chip_types, sites)] = np.maximum(
        on_hand[np.arange(sites), rng.integers(0, chip_types, sites)], 16.0)
    mean_rps_per_chip = float(np.mean(goodput / chips))
    rate = rng.dirichlet(np.ones(users)) * load * on_hand.sum() * mean_rps_per_chip * 0.5
    dist = great_circle_km(ulat[:, None], ulon[:, None], slat[None, :], slon[None, :])
    return PlacementProblem(
        site_ids=[f"s{i}" for i in range(sites)], site_lat=slat, site_lon=slon,
        site_is_edge=np.zeros(sites, dtype=bool), pue=rng.uniform(1.1, 1.6, sites),
        usd_per_kwh=rng.uniform(0.04, 0.15, sites), gco2_per_kwh=rng.uniform(100, 700, sites),
        power_limit_w=np.where(rng.random(sites) < 0.5, rng.uniform(20e3, 200e3, sites), np.inf),
        egress_usd_per_gb=rng.uniform(0.0, 0.1, sites), chip_ids=[f"chip{k}" for k in range(chip_types)],
        on_hand=on_hand, own_usd_per_chip_hour=np.tile(rng.uniform(0.3, 2.0, chip_types), (sites, 1)),
        rent_max=np.zeros((sites, chip_types)), rent_usd_per_chip_hour=np.zeros((sites, chip_types)),
        plan_labels=[f"plan{j}" for j in range(plans)], plan_chip=chip.astype(np.int64),
        plan_model=["m"] * plans, plan_chips=chips, plan_goodput_rps=goodput,
        plan_ttft_s=rng.uniform(0.05, 0.4, plans), plan_tpot_s=rng.uniform(0.02, 0.08, plans),
        plan_it_w=chips * rng.uniform(400, 1200, plans), demand_ids=[f"u{i}" for i in range(users)],
        demand_model=["m"] * users, demand_lat=ulat, demand_lon=ulon, rate_rps=rate,
        ttft_slo_s=rng.uniform(1.2, 2.0, users), tpot_slo_s=np.full(users, 0.1),
        access_rtt_s=np.full(users, 0.01), bytes_per_request=np.full(users, 1024.0),
        rtt_s=default_rtt_model().rtt_ms(dist) / 1e3)
