"""Training on a mixed fleet: pipeline stages on different chip types with an uneven layer split.

Entry point: ``search_mixed_training(fleet, model, job)`` → ``MixedSearch``.

Each data-parallel replica is one pipeline whose first ``stages[a]`` stages run on chip type ``a`` and
the rest on type ``b`` (both orders are tried); every stage uses the same TP width. Layers are split so
the two types' stage times are balanced (continuous optimum, then whole layers per stage). Data-parallel
gradient reduction runs per type, inside each type's own network; the one pipeline boundary between
the types crosses the scale-out network at the slower of the two NIC rates. Costs per layer come from
each type's own calibrated model (``perf.training.layer_costs``), so a mix is priced exactly as the
single-type plans it is compared with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.types import ModelArch
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.memory import training_memory
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import ACT_BYTES, _dp_exposed_s, _optimizer_s, layer_costs
from fleetwise.plan import RECOMPUTE, TrainingJob
from fleetwise.search.fleet import FleetPart
from fleetwise.search.space import divisors

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class MixedPlan:
    """One mixed-fleet training plan and its prediction."""

    first: str  # chip type of the first stages
    second: str
    tp: int
    dp: int
    stages: dict[str, int]
    layers: dict[str, int]
    chips_used: dict[str, int]
    micro_batch: int
    recompute: str
    zero: int
    step_time_s: float
    stage_time_s: dict[str, float]
    breakdown_s: dict[str, float]
    memory_gb: dict[str, float]
    tokens_per_s_per_chip: float


@dataclass(frozen=True, slots=True)
class MixedSearch:
    best: list[MixedPlan]
    candidates_evaluated: int
    feasible: int
    search_seconds: float


def _grid(parts: tuple[FleetPart, FleetPart], m: ModelArch, job: TrainingJob) -> dict[str, IntArray]:
    """Every (tp, dp, stages_a, stages_b, mbs, recompute, zero, order) combination that fits the chip counts."""
    na, nb = parts[0].chips, parts[1].chips
    blocks = []
    tps = [t for t in divisors(min(na, nb)) if m.heads % t == 0 and t <= 8]
    mbs_values = [b for b in (1, 2, 4, 8) if b <= job.global_batch]
    for tp in tps:
        for dp in divisors(job.global_batch):
            if dp * tp > min(na, nb):
                break
            mbs = [b for b in mbs_values if job.global_batch % (dp * b) == 0]
            sa_max, sb_max = min(na // (dp * tp), m.layers - 1), nb // (dp * tp)
            if not mbs or sa_max < 1 or sb_max < 1:
                continue
            grid = np.meshgrid([tp], [dp], np.arange(1, sa_max + 1), np.arange(1, sb_max + 1), mbs, [0, 1, 2],
                               [1, 3], [0, 1], indexing="ij")
            block = np.stack([g.ravel() for g in grid], axis=1)
            blocks.append(block[block[:, 2] + block[:, 3] <= m.layers])
    arr = np.concatenate(blocks).astype(np.int64) if blocks else np.zeros((0, 8), dtype=np.int64)
    names = ("tp", "dp", "sa", "sb", "mbs", "recompute", "zero", "order")
    return {n: arr[:, i] for i, n in enumerate(names)}


def _cands(g: dict[str, IntArray], pp: IntArray) -> Candidates:
    n = len(pp)
    return Candidates(
        tp=g["tp"], pp=pp, dp=g["dp"], cp=np.ones(n, np.int64), ep=np.ones(n, np.int64), mbs=g["mbs"],
        vpp=np.ones(n, np.int64), recompute=g["recompute"], recompute_frac=np.ones(n), zero=g["zero"],
        sp=g["tp"] > 1, tp_overlap=g["tp"] > 1, ep_overlap=np.zeros(n, np.bool_),  # TP overlap when SP is on
    )


def search_mixed_training(parts: tuple[FleetPart, FleetPart], model: ModelArch, job: TrainingJob,
                          top: int = 5) -> MixedSearch:
    """Search mixed-fleet pipelines over two chip types; fastest feasible first."""
    if len(parts) != 2:
        raise SpecError(f"--hardware: a mixed fleet takes exactly two chip types (got {len(parts)})")
    if model.moe is not None:
        raise SpecError("mixed-fleet training supports dense models only (expert parallelism across chip types "
                        "is not modelled)")
    t0 = time.perf_counter()
    g = _grid(parts, model, job)
    if not len(g["tp"]):
        raise InfeasibleError("no mixed layout fits the chip counts (each type needs at least tp*dp chips)")
    pp = g["sa"] + g["sb"]
    c = _cands(g, pp)
    setups = [make_training_setup(model, p.accel, p.system, job) for p in parts]
    lcs = [layer_costs(c, s) for s in setups]
    t = [lc.layer_total for lc in lcs]  # seconds per layer per micro-batch, (n,)
    head = [lc.head for lc in lcs]
    last_is_b = g["order"] == 0  # order 0: a first, b last (b holds the LM head)
    head_a = np.where(last_is_b, 0.0, head[0])
    head_b = np.where(last_is_b, head[1], 0.0)
    sa, sb = g["sa"].astype(np.float64), g["sb"].astype(np.float64)
    # balance: La/sa·ta + ha = Lb/sb·tb + hb with La + Lb = L
    L = float(model.layers)
    la_cont = (L * t[1] / sb + head_b - head_a) / (t[0] / sa + t[1] / sb)
    best_time = np.full(len(pp), np.inf)
    best_la = np.zeros(len(pp))
    for la in (np.floor(la_cont), np.ceil(la_cont)):
        la = np.clip(la, sa, L - sb)
        lb = L - la
        stage = np.maximum(np.ceil(la / sa) * t[0] + head_a, np.ceil(lb / sb) * t[1] + head_b)
        better = stage < best_time
        best_time = np.where(better, stage, best_time)
        best_la = np.where(better, la, best_la)
    la, lb = best_la, L - best_la
    per_stage_a, per_stage_b = np.ceil(la / sa), np.ceil(lb / sb)

    n_micro = (job.global_batch / (g["dp"] * g["mbs"])).astype(np.float64)
    # the one boundary between the types crosses scale-out at the slower NIC, forward and backward
    nic = min(s.network.scaleout.tier.bw_bytes_per_s for s in setups)
    p2p = 2.0 * (g["mbs"] * job.seq_len * model.hidden * ACT_BYTES / np.where(g["tp"] > 1, g["tp"], 1)) / nic
    stage_total = best_time + p2p
    # 1F1B with unequal stages: n_micro slots at the slowest stage's pace, and the warm-up and cool-down add one
    # micro-batch pass of every other stage ((m - 1) t_max + sum_i t_i, as perf.training prices homogeneous
    # stages: pp - 1 body-stage times, not pp - 1 slowest-stage times); the boundary p2p is counted above
    bubble = sa * (per_stage_a * t[0] + head_a) + sb * (per_stage_b * t[1] + head_b) - best_time
    dp_s = [
        _dp_exposed_s(c, s, ls, lc.kernel_bwd, lc.kernel_fwd + lc.kernel_bwd, n_micro)
        for s, ls, lc in zip(setups, (per_stage_a, per_stage_b), lcs, strict=True)
    ]
    opt = [_optimizer_s(c, s, ls) for s, ls in zip(setups, (per_stage_a, per_stage_b), strict=True)]
    step = n_micro * stage_total + bubble + np.maximum(dp_s[0], dp_s[1]) + np.maximum(opt[0], opt[1])

    mem = [training_memory(c, s, ls) for s, ls in zip(setups, (per_stage_a, per_stage_b), strict=True)]
    fits = mem[0].fits & mem[1].fits
    idx = np.flatnonzero(fits)
    order = idx[np.argsort(step[idx], kind="stable")][:top]
    names = [p.accel.id for p in parts]
    best = []
    for i in order:
        first, second = (names[0], names[1]) if g["order"][i] == 0 else (names[1], names[0])
        stages = {names[0]: int(g["sa"][i]), names[1]: int(g["sb"][i])}
        layers = {names[0]: int(la[i]), names[1]: int(lb[i])}
        used = {k: int(g["dp"][i] * g["tp"][i] * v) for k, v in stages.items()}
        best.append(MixedPlan(
            first=first, second=second, tp=int(g["tp"][i]), dp=int(g["dp"][i]), stages=stages, layers=layers,
            chips_used=used, micro_batch=int(g["mbs"][i]), recompute=RECOMPUTE[int(g["recompute"][i])],
            zero=int(g["zero"][i]), step_time_s=float(step[i]),
            stage_time_s={names[0]: float(per_stage_a[i] * t[0][i] + head_a[i]),
                          names[1]: float(per_stage_b[i] * t[1][i] + head_b[i])},
            breakdown_s={"pipeline_s": float(n_micro[i] * stage_total[i]), "bubble_s": float(bubble[i]),
                          "cross_type_p2p_s": float(n_micro[i] * p2p[i]),
                          "dp_comm_s": float(max(dp_s[0][i], dp_s[1][i])),
                          "optimizer_s": float(max(opt[0][i], opt[1][i]))},
            memory_gb={names[0]: float(mem[0].total[i] / 1e9), names[1]: float(mem[1].total[i] / 1e9)},
            tokens_per_s_per_chip=float(job.tokens_per_step / step[i] / sum(used.values())),
        ))
    return MixedSearch(best, len(pp), int(fits.sum()), time.perf_counter() - t0)
