"""Energy of serving: engine steps split into power phases, per-phase clocks (prefill vs decode), node and site.

Entry points: ``serving_energy_setup(s, site, cap_w)`` → ``ServingEnergySetup``; ``colocated_work``,
``prefill_work``, ``decode_work`` → ``EngineWork`` (a step's phase seconds at the maximum clock);
``run_step(chip, work, f_prefill, f_decode, cap_w)`` → ``EngineStep``; ``deployment_energy(es, pools,
tokens_per_s)`` → ``ServingEnergy`` (power per chip and node, J per output token, breakdown). All columns.
``phase_mix_energy`` prices one phase mix (scalar). Model: research/energy-network-placement.md §4.1–4.6.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fleetwise.energy.facility import SITES_FILE, load_sites
from fleetwise.energy.power import PHASES, ChipPower, Phase
from fleetwise.energy.training import EnergySetup, energy_setup
from fleetwise.errors import SpecError
from fleetwise.perf.batching import decode_rates, prefill_rate
from fleetwise.perf.inference import ServingSetup, ServingShape, StepTimes
from fleetwise.units import HOUR

FloatArray = npt.NDArray[np.float64]
UNBOUNDED_HBM = 1e9  # HBM efficiency multiplier that makes memory traffic free: what is left is core-bound time
PARTS = ("prefill", "decode")

SERVING_ENERGY_ASSUMPTIONS: tuple[str, ...] = (
    "a kernel's core-bound seconds are its time with free HBM traffic (roofline); the rest of its time is "
    "memory-bound (decode GEMMs at small batch, KV reads, elementwise)",
    "exposed TP/EP/PP communication is the comm phase; per-step host overhead (scheduling, sampling) is wait",
    "co-located steps: prefill work is what the prompt chunk adds to a decode-only step; each part runs at its "
    "own clock (per-iteration DVFS)",
    "engines idle between steps when the load is under capacity draw the chip's idle power",
    "node wall power = chips + host share + NICs; switch ports are outside the node and enter facility power",
)


@dataclass(frozen=True, slots=True)
class PhaseMixEnergy:
    """Per-chip energy (J), time (s) and average power (W) of a phase mix at one clock setting."""

    energy_j: float
    time_s: float
    clock_by_phase: dict[str, float]
    energy_by_phase_j: dict[str, float]

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.time_s if self.time_s > 0 else 0.0


def phase_mix_energy(chip: ChipPower, time_s: float, mix: Mapping[str, float], clock: float = 1.0,
                     cap_w: float | None = None) -> PhaseMixEnergy:
    """Energy of ``time_s`` seconds (at the maximum clock) split over power phases by ``mix`` (shares sum to 1).

    Args:
        chip: the accelerator's power parameters (``fleetwise.energy.power.chip_power``).
        time_s: duration of the work at the maximum clock, seconds.
        mix: share of that time per phase (compute, memory, comm, wait).
        clock: requested clock as a share of the maximum (DVFS), in [f_min, 1].
        cap_w: optional per-chip power cap, W; inert in phases that draw less.

    Returns:
        ``PhaseMixEnergy``: the lengthened time, the energy and the clock each phase ran at.
    """
    bad = [k for k in mix if k not in PHASES]
    if bad or abs(sum(mix.values()) - 1.0) > 1e-6 or any(v < 0 for v in mix.values()):
        raise SpecError(f"phase mix: shares over {', '.join(PHASES)} must be >= 0 and sum to 1 (got {dict(mix)})")
    if not chip.f_min - 1e-9 <= clock <= 1.0:
        raise SpecError(f"phase mix: clock must be in [{chip.f_min:.2f}, 1] (got {clock})")
    energy: dict[str, float] = {}
    clocks: dict[str, float] = {}
    total_t = 0.0
    for phase in PHASES:
        share = mix.get(phase, 0.0)
        if share <= 0.0:
            continue
        f = min(clock, chip.capped_clock(phase, cap_w))
        t = time_s * share * float(chip.time_factor(phase, f))
        clocks[phase] = f
        energy[phase] = float(chip.power_w(phase, f)) * t
        total_t += t
    return PhaseMixEnergy(sum(energy.values()), total_t, clocks, energy)


@dataclass(frozen=True, slots=True)
class ServingEnergySetup:
    """The chip's power model, a power cap, per-chip shares of node power, and the site."""

    base: EnergySetup
    host_w_per_chip: float
    nic_w_per_chip: float
    switch_w_per_chip: float

    @property
    def chip(self) -> ChipPower:
        return self.base.chip

    @property
    def cap_w(self) -> float | None:
        return self.base.settings.cap_w

    @property
    def pue(self) -> float:
        return self.base.site.pue


def serving_energy_setup(s: ServingSetup, site: str | None = None, cap_w: float | None = None,
                         sites_file: Path = SITES_FILE) -> ServingEnergySetup:
    """Resolve power parameters, node overhead (split into host, NICs and switch ports) and the site.

    Args:
        s: the serving setup (chip and system).
        site: site id in the sites file; None = its default site.
        cap_w: per-chip power cap, W; None = uncapped.
        sites_file: the sites file.
    """
    from fleetwise.energy.training import PowerSettings

    base = energy_setup(s.accel, s.system, site, PowerSettings(cap_w=cap_w), sites_file)
    node = load_sites(Path(sites_file)).node
    n = max(base.node.chips_per_node, 1)
    nics = s.system.nics_per_node if s.system.nics_per_node is not None else n
    nic_w = nics * node.nic_w
    return ServingEnergySetup(base, base.node.host_w / n, nic_w / n, max(base.node.network_w - nic_w, 0.0) / n)


@dataclass(frozen=True, slots=True)
class StepPhases:
    """Seconds of one engine step at the maximum clock, by power phase (columns)."""

    compute_s: FloatArray
    memory_s: FloatArray
    comm_s: FloatArray
    wait_s: FloatArray

    def times(self) -> dict[Phase, FloatArray]:
        return {"compute": self.compute_s, "memory": self.memory_s, "comm": self.comm_s, "wait": self.wait_s}

    @property
    def total_s(self) -> FloatArray:
        return np.asarray(self.compute_s + self.memory_s + self.comm_s + self.wait_s)


def step_phases(step: StepTimes, compute_bound: StepTimes) -> StepPhases:
    """Split a step by power phase; ``compute_bound`` is the same step evaluated with free HBM traffic."""
    kernel = step.gemm_s + step.attention_s + step.elementwise_s
    compute = np.minimum(compute_bound.gemm_s + compute_bound.attention_s + compute_bound.elementwise_s, kernel)
    return StepPhases(np.asarray(compute), np.asarray(kernel - compute),
                      np.asarray(step.tp_comm_s + step.ep_comm_s + step.pp_comm_s), np.asarray(step.overhead_s))


def _minus(a: StepPhases, b: StepPhases) -> StepPhases:
    return StepPhases(*(np.maximum(x - y, 0.0) for x, y in zip(
        (a.compute_s, a.memory_s, a.comm_s, a.wait_s), (b.compute_s, b.memory_s, b.comm_s, b.wait_s), strict=True)))


def _zero(like: StepPhases) -> StepPhases:
    z = np.zeros_like(like.compute_s)
    return StepPhases(z, z, z, z)


@dataclass(frozen=True, slots=True)
class EngineWork:
    """One engine step at the maximum clock: its prefill part and its decode part (columns)."""

    prefill: StepPhases
    decode: StepPhases

    @property
    def total_s(self) -> FloatArray:
        return np.asarray(self.prefill.total_s + self.decode.total_s)


def _compute_bound_setup(s: ServingSetup) -> ServingSetup:
    return replace(s, eff=replace(s.eff, hbm=s.eff.hbm * UNBOUNDED_HBM))


def colocated_work(s: ServingSetup, sh: ServingShape, batch: FloatArray, input_tokens: float,
                   output_tokens: float) -> EngineWork:
    """A continuous-batching step at ``batch`` sequences per rank (chunked prefill mixed in, as ``decode_rates``).

    The prefill part is what the prompt chunk adds to the decode-only step at the same KV length.
    """
    cb = _compute_bound_setup(s)
    full = step_phases(decode_rates(s, sh, batch, input_tokens, output_tokens).step,
                       decode_rates(cb, sh, batch, input_tokens, output_tokens).step)
    dec = decode_work(s, sh, batch, input_tokens + 0.5 * output_tokens).decode
    # the decode-only step is never longer than the mixed one, part by part, except by rounding
    return EngineWork(_minus(full, dec), StepPhases(*(np.minimum(x, y) for x, y in zip(
        (dec.compute_s, dec.memory_s, dec.comm_s, dec.wait_s),
        (full.compute_s, full.memory_s, full.comm_s, full.wait_s), strict=True))))


def decode_work(s: ServingSetup, sh: ServingShape, batch: FloatArray, context_tokens: float) -> EngineWork:
    """A decode-only step (disaggregated decode engine) at ``batch`` sequences of ``context_tokens`` KV."""
    cb = _compute_bound_setup(s)
    dec = step_phases(decode_rates(s, sh, batch, context_tokens, 1.0, with_prefill=False).step,
                      decode_rates(cb, sh, batch, context_tokens, 1.0, with_prefill=False).step)
    return EngineWork(_zero(dec), dec)


def prefill_work(s: ServingSetup, sh: ServingShape, input_tokens: float, tokens_per_step: FloatArray) -> EngineWork:
    """A prefill-only step of ``tokens_per_step`` prompt tokens per rank (disaggregated prefill engine)."""
    pre = step_phases(prefill_rate(s, sh, input_tokens, tokens_per_step)[0],
                      prefill_rate(_compute_bound_setup(s), sh, input_tokens, tokens_per_step)[0])
    return EngineWork(pre, _zero(pre))


@dataclass(frozen=True, slots=True)
class EngineStep:
    """One step under clocks: seconds, and per-chip joules by ``"<part>.<phase>"`` (columns)."""

    time_s: FloatArray
    prefill_s: FloatArray
    energy_by_phase_j: dict[str, FloatArray]

    @property
    def energy_j(self) -> FloatArray:
        return np.asarray(sum(self.energy_by_phase_j.values()))

    @property
    def power_w(self) -> FloatArray:
        return np.asarray(self.energy_j / np.maximum(self.time_s, 1e-30))


def run_step(chip: ChipPower, work: EngineWork, f_prefill: FloatArray | float = 1.0,
             f_decode: FloatArray | float = 1.0, cap_w: float | None = None) -> EngineStep:
    """Time and per-chip energy of ``work`` with prefill at clock ``f_prefill`` and decode at ``f_decode``.

    Args:
        chip: power parameters.
        work: phase seconds at the maximum clock.
        f_prefill: clock share of the maximum for the prefill part (column or scalar), in [f_min, 1].
        f_decode: clock share for the decode part.
        cap_w: per-chip power cap, W; a phase that would draw more runs at its capped clock.

    Returns:
        ``EngineStep``: only the core-bound share of each phase stretches (``ChipPower.time_factor``).
    """
    energy: dict[str, FloatArray] = {}
    times: dict[str, FloatArray] = {}
    for part, phases, f_req in (("prefill", work.prefill, f_prefill), ("decode", work.decode, f_decode)):
        f_arr = np.clip(np.asarray(f_req, dtype=np.float64), chip.f_min, 1.0)
        t_part = np.zeros_like(phases.compute_s)
        for phase, t0 in phases.times().items():
            f = np.minimum(f_arr, chip.capped_clock(phase, cap_w))
            t = t0 * chip.time_factor(phase, f)
            energy[f"{part}.{phase}"] = np.asarray(chip.power_w(phase, f) * t)
            t_part = t_part + t
        times[part] = np.asarray(t_part)
    return EngineStep(np.asarray(times["prefill"] + times["decode"]), times["prefill"], energy)


@dataclass(frozen=True, slots=True)
class Pool:
    """Engines of one kind: ``chips`` in all, each engine busy ``busy`` of the time running ``step``."""

    chips: FloatArray
    step: EngineStep
    busy: FloatArray


@dataclass(frozen=True, slots=True)
class ServingEnergy:
    """Average power of a deployment (W, whole deployment) and what it buys (columns).

    ``chip_w_by_phase`` splits the accelerators' power by ``"<part>.<phase>"`` plus ``"idle"``; the
    energy of any period is these watts times its length (J per output token = W / tokens per s).
    """

    output_tokens_per_s: FloatArray
    chips: FloatArray
    chip_w_by_phase: dict[str, FloatArray]
    host_w: FloatArray
    nic_w: FloatArray
    switch_w: FloatArray
    chips_per_node: int
    pue: float
    usd_per_kwh: float
    gco2_per_kwh: float

    @property
    def chip_w(self) -> FloatArray:
        return np.asarray(sum(self.chip_w_by_phase.values()))

    @property
    def node_w(self) -> FloatArray:
        """Wall power of the servers: chips, host share and NICs (what a node power analyzer reads)."""
        return np.asarray(self.chip_w + self.host_w + self.nic_w)

    @property
    def facility_w(self) -> FloatArray:
        return np.asarray(self.pue * (self.node_w + self.switch_w))

    @property
    def avg_power_w_per_chip(self) -> FloatArray:
        return np.asarray(self.chip_w / self.chips)

    @property
    def avg_power_w_per_node(self) -> FloatArray:
        return np.asarray(self.node_w / self.chips * self.chips_per_node)

    def j_per_token(self, boundary: str = "facility") -> FloatArray:
        """Joules per output token at ``boundary``: chip, node (wall) or facility (PUE x (node + switches))."""
        watts = {"chip": self.chip_w, "node": self.node_w, "facility": self.facility_w}
        if boundary not in watts:
            raise SpecError(f"energy boundary must be one of {', '.join(watts)} (got {boundary!r})")
        return np.asarray(watts[boundary] / np.maximum(self.output_tokens_per_s, 1e-30))

    def row(self, i: int, output_tokens: float) -> dict[str, object]:
        """Plan ``i`` as plain numbers: power, J/token at each boundary, J per request, $ and g CO2 per Mtoken."""
        tps = float(self.output_tokens_per_s[i])
        fac = float(self.j_per_token("facility")[i])
        parts = {k: float(v[i]) / tps for k, v in self.chip_w_by_phase.items() if float(v[i]) > 0}
        return {
            "avg_power_w_per_chip": float(self.avg_power_w_per_chip[i]),
            "avg_power_w_per_node": float(self.avg_power_w_per_node[i]),
            "j_per_token_chip": float(self.j_per_token("chip")[i]),
            "j_per_token_node": float(self.j_per_token("node")[i]),
            "j_per_token": fac,
            "energy_per_request_j": fac * output_tokens,
            "usd_energy_per_mtoken": fac * 1e6 / (1000.0 * HOUR) * self.usd_per_kwh,
            "gco2_per_mtoken": fac * 1e6 / (1000.0 * HOUR) * self.gco2_per_kwh,
            "j_per_token_by_part": {
                **{f"chips.{k}": v for k, v in parts.items()},
                "host": float(self.host_w[i]) / tps, "nic": float(self.nic_w[i]) / tps,
                "switch": float(self.switch_w[i]) / tps,
                "pue_overhead": (self.pue - 1.0) * float(self.node_w[i] + self.switch_w[i]) / tps},
            "pue": self.pue,
        }


def deployment_energy(es: ServingEnergySetup, pools: Sequence[Pool], output_tokens_per_s: FloatArray
                      ) -> ServingEnergy:
    """Average power of pools of engines serving ``output_tokens_per_s`` (whole deployment, columns).

    A busy engine draws its step energy over its step time; the rest of the time its chips idle.
    """
    by_phase: dict[str, FloatArray] = {}
    chips = np.zeros_like(np.asarray(output_tokens_per_s, dtype=np.float64))
    idle = np.zeros_like(chips)
    for pool in pools:
        busy = np.clip(pool.busy, 0.0, 1.0)
        scale = pool.chips * busy / np.maximum(pool.step.time_s, 1e-30)
        for k, e in pool.step.energy_by_phase_j.items():
            by_phase[k] = np.asarray(by_phase.get(k, 0.0) + scale * e)
        idle = idle + pool.chips * (1.0 - busy) * es.chip.idle_w
        chips = chips + pool.chips
    by_phase["idle"] = np.asarray(idle)
    return ServingEnergy(
        output_tokens_per_s=np.asarray(output_tokens_per_s, dtype=np.float64), chips=chips,
        chip_w_by_phase=by_phase, host_w=np.asarray(chips * es.host_w_per_chip),
        nic_w=np.asarray(chips * es.nic_w_per_chip), switch_w=np.asarray(chips * es.switch_w_per_chip),
        chips_per_node=es.base.node.chips_per_node, pue=es.pue, usd_per_kwh=es.base.site.usd_per_kwh,
        gco2_per_kwh=es.base.site.gco2_per_kwh)


def colocated_energy(s: ServingSetup, es: ServingEnergySetup, sh: ServingShape, batch: FloatArray,
                     input_tokens: float, output_tokens: float, engines: float,
                     f_prefill: float = 1.0, f_decode: float = 1.0) -> tuple[EngineStep, ServingEnergy]:
    """``engines`` co-located engines each running full at ``batch`` sequences per rank (offline serving).

    Returns:
        (the step under the clocks, the deployment's energy); throughput reflects the clocks and any cap.
    """
    step = run_step(es.chip, colocated_work(s, sh, batch, input_tokens, output_tokens), f_prefill, f_decode,
                    es.cap_w)
    cpr = (sh.tp * sh.pp * sh.dp).astype(np.float64)
    tokens_per_s = engines * batch * sh.dp / step.time_s
    return step, deployment_energy(es, [Pool(engines * cpr, step, np.ones_like(step.time_s))], tokens_per_s)
