"""Serve one model on whole systems (supernodes, racks, node clusters) and compare them per chip and per system.

Entry points: ``prefill_options`` / ``decode_options`` (best engine per size for one serving phase, column-wise
over shapes x batch), ``deploy_pd`` (whole prefill and decode engines on a chip budget, balanced for a
workload), ``serve_system`` (a system's best deployment with its power and cost) and ``compare_systems``.

Large expert parallelism is how MoE models are served on these systems (DeepSeek-V3 Sec. 3.4, CloudMatrix-Infer
arXiv:2506.12708 Sec. 4): prefill and decode run in separate engines, each rank holds its own attention batch
(tp 1, attention data parallel) and ``ep`` ranks share the experts. Dense models use tensor-parallel engines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.loader import Catalog
from fleetwise.catalog.types import ModelArch, System
from fleetwise.energy.serving import ServingEnergySetup, phase_mix_energy
from fleetwise.energy.training import EnergySetup, energy_setup
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.perf.batching import decode_rates, kv_transfer_s, max_batch_by_kv, prefill_rate, ttft_s
from fleetwise.perf.inference import (
    PRECISION_CODES,
    ServingSetup,
    ServingShape,
    StepTimes,
    kv_bytes_per_sequence,
    kv_capacity,
    make_serving_setup,
)
from fleetwise.plan import ServingPlan
from fleetwise.search.serving import (
    MAX_UTILISATION,
    Objective,
    ServingCandidate,
    ServingSearch,
    ServingWorkload,
    search_serving,
)

FloatArray = npt.NDArray[np.float64]
EP_CHOICES = (8, 16, 32, 64, 128, 256, 320)  # 320 = 256 routed + shared + redundant experts (CloudMatrix decode)
MIN_EP = 32  # large EP, as the supernode deployments run it; smaller only where the chips allow no more
PREFILL_TOKENS = (1024, 2048, 4096, 8192, 16384)  # prompt tokens per rank per prefill step
DECODE_BATCHES = tuple(int(b) for b in np.unique(np.round(np.geomspace(1, 2048, 45))))  # sequences per rank
WEIGHT_CHOICES = ("bf16", "fp8", "int8")  # no narrower than 8 bit: the published CM384 / DeepSeek deployments
KV_CHOICES = ("bf16", "fp8", "int8")
HOUR_S = 3600.0

SERVING_ASSUMPTIONS: tuple[str, ...] = (
    "prefill and decode in separate engines (P/D disaggregation); the KV cache moves over scale-out",
    "MoE: tp 1 with attention data parallelism, ep = dp ranks share the experts; dense: tp engines, ep 1",
    "weights and KV in bf16 or the chip's native 8-bit format (int8 on Ascend, fp8 on NVIDIA), whichever is faster",
    "prefill: steady chunks of PREFILL_TOKENS per rank; TTFT = 1.5 chunk steps + KV hand-off",
    "decode: batch per rank up to the KV capacity at context input + output/2; TPOT = one step",
    "pools sized in whole engines to balance prompt and output token rates; goodput = requests/s within both SLOs",
    "chip power in a phase from the step breakdown: GEMM+attention are compute in prefill, memory in decode; "
    "communication is 'comm'; host overhead is 'wait'; chips outside any engine idle",
)


@dataclass(frozen=True, slots=True)
class PhaseOption:
    """The best engine of one size for one phase (prefill or decode) and its steady state."""

    phase: str  # "prefill" or "decode"
    engine_chips: int
    tp: int
    ep: int
    weights: str
    kv: str
    per_rank: float  # prefill: prompt tokens per rank per step; decode: sequences per rank
    tokens_per_s_per_chip: float  # prefill: prompt tokens; decode: output tokens
    latency_s: float  # prefill: TTFT (with the hand-off); decode: TPOT
    handoff_s: float  # prefill: KV hand-off included in latency_s; decode: 0
    kv_bytes_per_seq: float  # KV of one prompt, whole engine
    parts_s: dict[str, float]  # step breakdown

    def label(self) -> str:
        unit = "tok/rank/step" if self.phase == "prefill" else "seq/rank"
        return (f"{self.phase} tp{self.tp}" + (f" ep{self.ep}" if self.ep > 1 else "")
                + f" ({self.engine_chips} chips) w{self.weights} kv{self.kv} {self.per_rank:g} {unit}")


@dataclass(frozen=True, slots=True)
class Deployment:
    """Whole prefill and decode engines on a chip budget and the goodput they sustain together."""

    prefill: PhaseOption
    decode: PhaseOption
    prefill_engines: int
    decode_engines: int
    goodput_rps: float
    chips_budget: int

    @property
    def prefill_chips(self) -> int:
        return self.prefill_engines * self.prefill.engine_chips

    @property
    def decode_chips(self) -> int:
        return self.decode_engines * self.decode.engine_chips

    @property
    def chips_used(self) -> int:
        return self.prefill_chips + self.decode_chips


def _shapes(s: ServingSetup, max_chips: int, weights: tuple[str, ...], min_ep: int) -> ServingShape:
    """Engine shapes that fit ``max_chips``: (tp 1, ep = dp) for MoE, (tp, ep 1) for dense, x precisions."""
    ws = [p for p in weights if p in ("bf16", "int4") or s.accel.supports(p)]  # type: ignore[arg-type]
    kvs = [p for p in KV_CHOICES if p == "bf16" or s.accel.supports(p)]  # type: ignore[arg-type]
    rows = []
    if s.model.moe is not None:
        floor = min(min_ep, max(e for e in EP_CHOICES + (max_chips,) if e <= max_chips))
        for ep in sorted({e for e in EP_CHOICES + (max_chips,) if floor <= e <= min(max_chips, max(EP_CHOICES))}):
            rows += [(1, ep, ep, w, kv) for w in ws for kv in kvs]
    else:
        domain = max(s.system.domain_size, 1)
        tps = [2**k for k in range(int(math.log2(max(min(domain, s.model.heads, max_chips), 1))) + 1)]
        rows += [(tp, 1, 1, w, kv) for tp in tps for w in ws for kv in kvs]
    if not rows:
        raise InfeasibleError(f"no engine shape fits {max_chips} chips")
    a = np.array([(tp, dp, ep, PRECISION_CODES.index(w), PRECISION_CODES.index(kv)) for tp, dp, ep, w, kv in rows])
    one = np.ones(len(a), dtype=np.int64)
    return ServingShape(a[:, 0], one, a[:, 1], a[:, 2], a[:, 3], a[:, 4])


def _grid(sh: ServingShape, values: tuple[int, ...]) -> tuple[ServingShape, FloatArray]:
    """Every shape x every value: (n_shapes * n_values,) columns, shape-major."""
    k = len(values)
    rep = ServingShape(*(np.repeat(getattr(sh, f), k) for f in ("tp", "pp", "dp", "ep", "wcode", "kvcode")))
    return rep, np.tile(np.array(values, dtype=np.float64), len(sh.tp))


def _parts(step: StepTimes, j: int) -> dict[str, float]:
    return {k: float(np.asarray(v)[j]) for k, v in step.parts().items()}


def _best_per_size(phase: str, sh: ServingShape, per_rank: FloatArray, rate: FloatArray, latency: FloatArray,
                   handoff: FloatArray, kv_seq: FloatArray, ok: npt.NDArray[np.bool_], step: StepTimes,
                   per_shape: bool = False) -> list[PhaseOption]:
    """The fastest option per engine size (``per_shape``: per size x weight x KV precision)."""
    chips = (sh.tp * sh.dp).astype(np.int64)
    key = chips * 64 + sh.wcode * 8 + sh.kvcode if per_shape else chips
    out = []
    for size in np.unique(key[ok]):
        idx = np.nonzero(ok & (key == size))[0]
        j = int(idx[np.lexsort((latency[idx], -rate[idx]))[0]])
        out.append(PhaseOption(phase, int(chips[j]), int(sh.tp[j]), int(sh.ep[j]), PRECISION_CODES[int(sh.wcode[j])],
                               PRECISION_CODES[int(sh.kvcode[j])], float(per_rank[j]), float(rate[j]),
                               float(latency[j]), float(handoff[j]), float(kv_seq[j]), _parts(step, j)))
    return out


def prefill_options(s: ServingSetup, w: ServingWorkload, max_chips: int, peer: ServingSetup | None = None,
                    weights: tuple[str, ...] = WEIGHT_CHOICES, min_ep: int = MIN_EP,
                    per_shape: bool = False) -> list[PhaseOption]:
    """Best prefill engine of each size meeting TTFT (prompt tokens/s per chip), column-wise over shape x chunk.

    Args:
        s: serving setup of the chip and system.
        w: workload (input tokens, TTFT target in s).
        max_chips: largest engine allowed.
        peer: the decode pool's setup when it is another chip type: each prefill rank sends its KV shard to
            a decode rank over scale-out, at the slower of the two NICs; None: this system's own P/D hand-off.
        weights: weight precisions to try (the chip's unsupported ones are dropped).
        min_ep: smallest EP degree tried for MoE models (smaller only if the chips allow no more).
    """
    sh, t = _grid(_shapes(s, max_chips, weights, min_ep), PREFILL_TOKENS)
    i = w.input_tokens
    step, rate = prefill_rate(s, sh, i, t)
    kv_rank = kv_bytes_per_sequence(s, sh, np.asarray(i, dtype=np.float64))
    if peer is None:
        handoff = kv_transfer_s(s, sh, i)
    else:
        cross = np.ones(len(t), dtype=bool)
        handoff = np.maximum(s.network.p2p_s(kv_rank, cross), peer.network.p2p_s(kv_rank, cross))
    latency = ttft_s(step.total_s, i, t) + handoff
    in_flight = np.maximum(t / i, 1.0) * kv_rank  # prompts of one chunk held until handed off
    cap = kv_capacity(s, sh, t)
    ok = cap.fits & (in_flight <= cap.kv_capacity) & (latency <= w.ttft_s) & (sh.tp * sh.dp <= max_chips)
    return _best_per_size("prefill", sh, t, rate, latency, handoff, kv_rank * sh.tp, ok, step, per_shape)


def decode_options(s: ServingSetup, w: ServingWorkload, max_chips: int, weights: tuple[str, ...] = WEIGHT_CHOICES,
                   min_ep: int = MIN_EP, per_shape: bool = False) -> list[PhaseOption]:
    """Best decode engine of each size meeting TPOT (output tokens/s per chip), column-wise over shape x batch."""
    sh, b = _grid(_shapes(s, max_chips, weights, min_ep), DECODE_BATCHES)
    i, o = w.input_tokens, w.output_tokens
    r = decode_rates(s, sh, b, i + 0.5 * o, 1.0, with_prefill=False)
    fits_kv = b <= max_batch_by_kv(s, sh, i, o, b)
    ok = kv_capacity(s, sh, b).fits & fits_kv & (r.tpot_s <= w.tpot_s)
    zero = np.zeros_like(b)
    return _best_per_size("decode", sh, b, r.tokens_per_s_per_chip, r.tpot_s, zero, zero, ok, r.step, per_shape)


def _split(chips: int, p: PhaseOption, d: PhaseOption, w: ServingWorkload) -> tuple[int, int, float]:
    """(prefill engines, decode engines, requests/s) of the best whole-engine split of ``chips``."""
    best = (0, 0, 0.0)
    pre_rps = p.engine_chips * p.tokens_per_s_per_chip / w.input_tokens  # one prefill engine
    dec_rps = d.engine_chips * d.tokens_per_s_per_chip / w.output_tokens
    for n_d in range(1, chips // d.engine_chips + 1):
        n_p = (chips - n_d * d.engine_chips) // p.engine_chips
        if n_p < 1:
            break
        # no more prefill engines than the decode pool can absorb (plus one to cover a remainder)
        n_p = min(n_p, math.ceil(n_d * dec_rps / pre_rps))
        rps = min(n_p * pre_rps, n_d * dec_rps)
        if rps > best[2] * (1 + 1e-9):
            best = (n_p, n_d, rps)
    return best


def deploy_pd(prefill: list[PhaseOption], decode: list[PhaseOption], chips: int, w: ServingWorkload
              ) -> Deployment:
    """The whole-engine P/D deployment on ``chips`` with the most goodput (ties: fewer chips).

    Raises:
        InfeasibleError: no prefill/decode engine pair fits the budget within the SLOs.
    """
    best: Deployment | None = None
    for p in prefill:
        for d in decode:
            n_p, n_d, rps = _split(chips, p, d, w)
            if n_p < 1:
                continue
            dep = Deployment(p, d, n_p, n_d, rps, chips)
            if best is None or rps > best.goodput_rps * (1 + 1e-9) or (
                    rps >= best.goodput_rps * (1 - 1e-9) and dep.chips_used < best.chips_used):
                best = dep
    if best is None:
        raise InfeasibleError(f"no prefill + decode engines fit {chips} chips within TTFT {w.ttft_s * 1e3:g} ms "
                              f"and TPOT {w.tpot_s * 1e3:g} ms ({len(prefill)} prefill, {len(decode)} decode sizes)")
    return best


@dataclass(frozen=True, slots=True)
class SystemPower:
    """Power of the chips a deployment spans (W): nameplate, and the modelled draw while serving."""

    nodes: int
    nameplate_w: float  # node_power_w x nodes (catalog); chips x TDP + host + network where it has none
    chips_w: float  # modelled accelerator draw in the serving phase mix
    host_w: float
    network_w: float
    pue: float
    derived: tuple[str, ...]

    @property
    def it_w(self) -> float:
        return self.chips_w + self.host_w + self.network_w

    @property
    def facility_w(self) -> float:
        return self.it_w * self.pue


def _phase_mix(o: PhaseOption) -> dict[str, float]:
    """Shares of the step per power phase: weight GEMMs and attention are core-bound in prefill and
    HBM-bound in decode; elementwise kernels are HBM-bound; exposed comms are 'comm'; host overhead 'wait'."""
    p = o.parts_s
    total = sum(p.values())
    kernels = (p["gemm_s"] + p["attention_s"]) / total
    mix: dict[str, float] = {
        "compute": kernels if o.phase == "prefill" else 0.0,
        "memory": p["elementwise_s"] / total + (kernels if o.phase == "decode" else 0.0),
        "comm": (p["tp_comm_s"] + p["ep_comm_s"] + p["pp_comm_s"]) / total,
        "wait": p["overhead_s"] / total,
    }
    return mix


def chip_power_w(e: EnergySetup, o: PhaseOption) -> float:
    """Average accelerator power (W) over ``o``'s step, from its breakdown mapped onto power phases."""
    return phase_mix_energy(e.chip, 1.0, _phase_mix(o)).avg_power_w


def system_power(e: EnergySetup, system: System, dep: Deployment, chips: int, pue: float) -> SystemPower:
    """Nameplate and modelled serving power of ``chips`` chips of ``system`` running ``dep``."""
    nodes = math.ceil(chips / system.chips_per_node)
    idle = chips - dep.chips_used
    chips_w = (dep.prefill_chips * chip_power_w(e, dep.prefill) + dep.decode_chips * chip_power_w(e, dep.decode)
               + idle * e.chip.idle_w)
    derived = list(e.node.derived) + [f"chip power: {x}" for x in e.chip.derived]
    if system.node_power_w is not None:
        nameplate = system.node_power_w * nodes
    else:
        nameplate = nodes * (system.chips_per_node * e.chip.max_w + e.node.host_w + e.node.network_w)
        derived.append("nameplate: chips x TDP + host + network (the system has no node_power_w)")
    return SystemPower(nodes, float(nameplate), float(chips_w), nodes * e.node.host_w, nodes * e.node.network_w,
                       pue, tuple(derived))


@dataclass(frozen=True, slots=True)
class SystemServing:
    """One system's best serving deployment, power and cost."""

    system_id: str
    accelerator_id: str
    chips: int
    deployment: Deployment
    power: SystemPower
    site_id: str
    usd_per_kwh: float
    usd_per_chip_hour: float | None  # None: no price or rent known for the chip
    output_tokens: float
    input_tokens: float
    prefill_best: PhaseOption  # the per-chip fastest prefill engine within the SLO (any size that fits)
    decode_best: PhaseOption
    hardware_price: str = ""  # which price usd_per_chip_hour came from (rent, amortised purchase, none)

    @property
    def output_tokens_per_s(self) -> float:
        return self.deployment.goodput_rps * self.output_tokens

    @property
    def tokens_per_joule(self) -> float:
        """Output tokens per joule of facility energy (modelled serving draw x PUE)."""
        return self.output_tokens_per_s / self.power.facility_w

    @property
    def tokens_per_joule_nameplate(self) -> float:
        return self.output_tokens_per_s / (self.power.nameplate_w * self.power.pue)

    @property
    def energy_usd_per_hour(self) -> float:
        return self.power.facility_w / 1000.0 * self.usd_per_kwh

    @property
    def usd_per_million_output_tokens(self) -> float | None:
        """(hardware + energy) per hour over output tokens per hour; None when the hardware price is unknown."""
        if self.usd_per_chip_hour is None:
            return None
        per_h = self.usd_per_chip_hour * self.chips + self.energy_usd_per_hour
        return per_h / (self.output_tokens_per_s * HOUR_S) * 1e6

    @property
    def energy_usd_per_million_output_tokens(self) -> float:
        return self.energy_usd_per_hour / (self.output_tokens_per_s * HOUR_S) * 1e6


def system_chips(system: System, reference_chips: int | None = None) -> int:
    """Chips of one system: its scale-up domain when it spans nodes (a supernode or rack), else whole nodes
    holding ``reference_chips`` (default one node)."""
    if system.domain_size > system.chips_per_node:
        return system.domain_size
    n = reference_chips or system.chips_per_node
    return max(1, math.ceil(n / system.chips_per_node)) * system.chips_per_node


def _rate(o: PhaseOption) -> float:
    return o.tokens_per_s_per_chip


def serve_system(model: ModelArch, system: System, w: ServingWorkload, catalog: Catalog, chips: int,
                 site: str | None = None, chip_price_usd: float | None = None) -> SystemServing:
    """The best P/D deployment of ``model`` on ``chips`` chips of ``system``, with power and cost.

    Args:
        model: model architecture.
        system: catalog system (chip, node, scale-up and scale-out tiers, node power).
        w: workload: mean input/output tokens and TTFT/TPOT targets (s).
        catalog: the catalog the system's accelerator comes from.
        chips: chips the deployment may use (whole systems: ``system_chips``).
        site: site id for PUE and electricity price (default: the sites file's default).
        chip_price_usd: overrides the catalog price (amortised like it); None keeps the catalog's.
    """
    accel = catalog.accelerator(system.accelerator_id, "accelerator_id")
    if chip_price_usd is not None:
        accel = accel.model_copy(update={"price_usd": chip_price_usd})
    s = make_serving_setup(model, accel, system, expert_parallel=model.moe is not None)
    pre, dec = prefill_options(s, w, chips), decode_options(s, w, chips)
    dep = deploy_pd(pre, dec, chips, w)
    e = energy_setup(accel, system, site)
    pue = system.pue or e.site.pue
    power = system_power(e, system, dep, chips, pue)
    return SystemServing(system.id, accel.id, chips, dep, power, e.site_id, e.site.usd_per_kwh,
                         e.usd_per_chip_hour, w.output_tokens, w.input_tokens,
                         max(pre, key=_rate), max(dec, key=_rate), e.hardware_price)


def compare_systems(model: ModelArch, systems: list[System], w: ServingWorkload, catalog: Catalog,
                    site: str | None = None, node_chips: int | None = None,
                    prices: dict[str, float] | None = None) -> list[SystemServing]:
    """Serve ``model`` on one whole unit of each system (supernode/rack; node systems: ``node_chips`` chips,
    default the largest supernode compared), each with its best large-EP deployment."""
    if not systems:
        raise SpecError("--systems: give at least one system id")
    prices = prices or {}
    ref = node_chips or max((system_chips(x) for x in systems if x.domain_size > x.chips_per_node), default=None)
    return [serve_system(model, x, w, catalog, system_chips(x, ref), site, prices.get(x.accelerator_id))
            for x in systems]


def ep_serving_plans(s: ServingSetup, w: ServingWorkload, max_engine_chips: int | None = None
                     ) -> list[ServingCandidate]:
    """Large-EP disaggregated plans of a MoE model for a rate or a chip count (the engines ``compare serve``
    deploys, sized like ``plan serve`` sizes its plans), as serving candidates ranked by chips per goodput.

    Prefill and decode engines share one shape (tp 1, dp = ep ranks, weight and KV precision): a
    ``ServingPlan`` has one engine shape, and the KV cache moves between engines of the same layout. For a
    rate, each pool gets whole engines for ``MAX_UTILISATION`` of its capacity; for a chip count, the
    whole-engine split with the most goodput (``deploy_pd``). ``s`` must be an expert-parallel setup.

    Args:
        s: serving setup made with ``expert_parallel=True``.
        w: traffic, SLOs and either ``rate_per_s`` or ``chips``.
        max_engine_chips: largest engine tried (default: the chip count, else the scale-up domain or 320).
    """
    if s.model.moe is None:
        return []
    limit = max_engine_chips or w.chips or max(s.system.domain_size, max(EP_CHOICES))
    pre = prefill_options(s, w, limit, per_shape=True)
    dec = decode_options(s, w, limit, per_shape=True)
    by_shape = {(p.engine_chips, p.weights, p.kv): p for p in pre}
    i, o = w.input_tokens, w.output_tokens
    out = []
    for d in dec:
        p = by_shape.get((d.engine_chips, d.weights, d.kv))
        if p is None:
            continue
        pre_rps = p.engine_chips * p.tokens_per_s_per_chip / i  # one engine's requests/s
        dec_rps = d.engine_chips * d.tokens_per_s_per_chip / o
        if w.rate_per_s is not None:
            n_p = math.ceil(w.rate_per_s / (pre_rps * MAX_UTILISATION) - 1e-9)
            n_d = math.ceil(w.rate_per_s / (dec_rps * MAX_UTILISATION) - 1e-9)
            goodput = w.rate_per_s
        elif w.chips is not None:
            try:
                dep = deploy_pd([p], [d], w.chips, w)
            except InfeasibleError:  # one engine of each kind does not fit the chips
                continue
            n_p, n_d, goodput = dep.prefill_engines, dep.decode_engines, dep.goodput_rps
        else:
            n_p, n_d, goodput = 1, 1, min(pre_rps, dec_rps)
        if n_p < 1 or n_d < 1 or goodput <= 0:
            continue
        chips = (n_p + n_d) * d.engine_chips
        plan = ServingPlan(replicas=n_d, prefill_replicas=n_p, tp=1, dp=d.engine_chips, ep=d.ep,
                           max_batch=int(d.per_rank), token_budget=int(p.per_rank), weight_precision=d.weights,
                           kv_precision=d.kv)
        sh = ServingShape.of(1, 1, d.engine_chips, d.ep, d.weights, d.kv)
        mem = kv_capacity(s, sh, np.array([float(d.per_rank)]))
        seq = float(kv_bytes_per_sequence(s, sh, np.asarray(i + o, dtype=np.float64))[0])
        used = float(mem.weights[0] + mem.reserved[0]) + d.per_rank * seq
        out.append(ServingCandidate(plan, goodput, goodput * o / chips, p.latency_s, d.latency_s, used,
                                    chips / goodput))
    out.sort(key=lambda c: (c.chips_per_goodput, c.tpot_s))
    return out


def _rank_key(c: ServingCandidate, objective: Objective) -> tuple[float, ...]:
    if objective == "time":
        return (c.tpot_s, c.ttft_s, c.chips_per_goodput)
    if objective == "energy":  # plans without an energy figure rank after those with one
        j = c.energy.get("j_per_token") if c.energy else None
        return (float(j) if isinstance(j, (int, float)) else math.inf, c.chips_per_goodput, -c.goodput_rps)
    return (c.chips_per_goodput, -c.goodput_rps, c.tpot_s)


def search_serving_plans(s: ServingSetup, w: ServingWorkload, top: int = 10, objective: Objective = "cost",
                         energy: ServingEnergySetup | None = None, ep_setup: ServingSetup | None = None
                         ) -> ServingSearch:
    """The one serving search behind ``plan serve``: tensor/pipeline-parallel engines (co-located or P:D,
    ``search_serving``) and, for MoE models with ``ep_setup``, the large-EP disaggregated engines of
    ``compare serve`` (``ep_serving_plans``), ranked together by ``objective``.

    EP plans carry no energy figures yet: under the ``energy`` objective they rank after plans that have one.
    """
    base = search_serving(s, w, top=top, objective=objective, energy=energy)
    if ep_setup is None or s.model.moe is None:
        return base
    ep = ep_serving_plans(ep_setup, w)
    merged = sorted(base.best + ep, key=lambda c: _rank_key(c, objective))[:top]
    rejected = dict(base.rejected_by)
    return ServingSearch(merged, base.candidates_evaluated + len(ep), rejected)
