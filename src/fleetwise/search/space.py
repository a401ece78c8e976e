"""The candidate space of training plans for N chips, as numpy columns, with named feasibility masks.

Entry points: ``SearchSpace`` (the axis values, with ``pinned`` fixed fields), ``generate(space, ...)``
yielding ``Candidates`` blocks, and ``structural_masks`` (the divisibility and model-shape rules, each
named so ``explain`` can say which one rejects a plan).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.types import ModelArch
from fleetwise.errors import SpecError, cut, shown
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.memory import MemoryColumns, training_memory
from fleetwise.plan import RECOMPUTE, TrainingJob

if TYPE_CHECKING:
    from fleetwise.perf.setup import TrainingSetup

BoolArray = npt.NDArray[np.bool_]

RECOMPUTE_FRACS = (0.25, 0.5, 0.75, 1.0)


MAX_CHIPS = 1_000_000  # beyond the largest fleets announced (~10^5-10^6 accelerators); a larger count is a typo


def check_chips(chips: int, field: str = "--chips") -> None:
    """Raise ``SpecError`` unless ``chips`` is a whole number in [1, ``MAX_CHIPS``]."""
    if isinstance(chips, bool) or not isinstance(chips, int) or not 1 <= chips <= MAX_CHIPS:
        raise SpecError(f"{field} must be a whole number from 1 to {MAX_CHIPS:,} (got {shown(chips)})")


def check_pinned(space: SearchSpace, global_batch: int) -> None:
    """Raise ``SpecError`` when a pinned width cannot divide the chip count, or a pinned micro-batch exceeds
    the global batch (nothing could be evaluated)."""
    width = 1
    for name in ("tp", "pp", "cp", "dp"):
        v = space.pinned.get(name)
        if v is None:
            continue
        width *= int(v)
        if width > space.chips or space.chips % width:
            pinned = " x ".join(f"{k} {space.pinned[k]}" for k in ("tp", "pp", "cp", "dp") if k in space.pinned)
            raise SpecError(f"--{name}: {cut(pinned, 80)} must divide --chips {space.chips}")
    ep = space.pinned.get("ep")
    if ep is not None and int(ep) > space.chips:
        raise SpecError(f"--ep {shown(ep)} must be at most --chips {space.chips}")
    mbs = space.pinned.get("micro_batch")
    if mbs is not None and int(mbs) > global_batch:
        raise SpecError(f"--mbs (micro-batch) {shown(mbs)} must be at most the global batch {global_batch}")


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Axis values to combine. ``pinned`` fixes fields to one value (``TrainingPlan`` field names)."""

    chips: int
    max_micro_batch: int = 128
    vpp_values: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16)
    zero_values: tuple[int, ...] = (0, 1, 2, 3)
    pinned: Mapping[str, Any] = field(default_factory=dict)

    def axis(self, name: str, default: list[Any]) -> list[Any]:
        v = self.pinned.get(name)
        return [v] if v is not None else default


def _triples(space: SearchSpace, m: ModelArch, job: TrainingJob) -> npt.NDArray[np.int64]:
    """(tp, pp, cp, dp, ep) combinations whose product uses every chip, as rows."""
    n = space.chips
    rows = []
    for tp in space.axis("tp", divisors(n)):
        for pp in space.axis("pp", [d for d in divisors(n // tp) if d <= m.layers] if n % tp == 0 else []):
            rest = n // (tp * pp) if n % (tp * pp) == 0 else 0
            for cp in space.axis("cp", divisors(rest) if rest else []):
                if rest % cp:
                    continue
                dp = rest // cp
                if space.pinned.get("dp") not in (None, dp):
                    continue
                eps = [1] if m.moe is None else [e for e in divisors(dp * cp) if m.moe.experts % e == 0]
                for ep in space.axis("ep", eps):
                    rows.append((tp, pp, cp, dp, ep))
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


def _micro_batches(space: SearchSpace, job: TrainingJob) -> list[int]:
    """Every divisor of the global batch up to ``max_micro_batch``: a micro-batch must divide the batch
    of a data-parallel replica (global batch / dp), whose divisors all divide the global batch. Powers of
    two alone miss plans: a global batch of 1923 = 3 x 641 on 641 replicas needs micro-batch 3."""
    return space.axis("micro_batch", [d for d in divisors(job.global_batch) if d <= space.max_micro_batch])


def _knob_axes(space: SearchSpace, job: TrainingJob,
               moe: bool) -> tuple[list[npt.NDArray[np.int64]], npt.NDArray[np.float64]]:
    """The knob grid's axes (mbs, vpp, recompute choice, zero, sp, tp_overlap, ep_overlap, pp_inner, as
    integers) and the (recompute code, fraction) of each recompute choice; the grid is their product in
    this order (C order)."""
    recomputes: list[tuple[int, float]] = []
    for r in space.axis("recompute", list(RECOMPUTE)):
        code = RECOMPUTE.index(r)
        fracs = space.axis("recompute_layers_frac", list(RECOMPUTE_FRACS)) if code == 2 else [1.0]
        recomputes += [(code, f) for f in fracs]
    axes = [
        np.array(_micro_batches(space, job)),
        np.array(space.axis("vpp", list(space.vpp_values))),
        np.arange(len(recomputes)),
        np.array(space.axis("zero", list(space.zero_values))),
        np.array(space.axis("sequence_parallel", [True, False]), dtype=np.int64),
        np.array(space.axis("tp_comm_overlap", [False, True]), dtype=np.int64),
        np.array(space.axis("ep_comm_overlap", [False, True] if moe else [False]), dtype=np.int64),
        np.array([o == "tp-cp-pp-dp" for o in space.axis("rank_order", ["tp-cp-dp-pp", "tp-cp-pp-dp"])],
                 dtype=np.int64),
    ]
    return axes, np.array(recomputes, dtype=np.float64).reshape(-1, 2)


def _knob_grid(space: SearchSpace, job: TrainingJob, moe: bool) -> npt.NDArray[np.float64]:
    """Rows of (mbs, vpp, recompute, recompute_frac, zero, sp, tp_overlap, ep_overlap, pp_inner)."""
    axes, recomputes = _knob_axes(space, job, moe)
    grids = np.meshgrid(*axes, indexing="ij")
    flat = [g.ravel() for g in grids]
    rc = recomputes[flat[2]]
    cols = [flat[0], flat[1], rc[:, 0], rc[:, 1], flat[3], flat[4], flat[5], flat[6], flat[7]]
    return np.stack(cols, axis=1).astype(np.float64)


def space_size(space: SearchSpace, m: ModelArch, job: TrainingJob) -> int:
    return len(_triples(space, m, job)) * len(_knob_grid(space, job, m.moe is not None))


def space_axes(space: SearchSpace, m: ModelArch,
               job: TrainingJob) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(layouts as rows of tp, pp, cp, dp, ep; knob rows): the space is their full product."""
    return _triples(space, m, job), _knob_grid(space, job, m.moe is not None)


def generate(space: SearchSpace, m: ModelArch, job: TrainingJob, block: int = 262_144,
             layouts: npt.NDArray[np.int64] | None = None) -> Iterator[Candidates]:
    """Yield the full product of parallel layouts and knobs in blocks of about ``block`` rows.

    ``layouts`` restricts the product to those rows (layouts already rejected by ``layout_masks``).
    """
    if layouts is None:
        layouts = _triples(space, m, job)
    knobs = _knob_grid(space, job, m.moe is not None)
    if len(layouts) == 0 or len(knobs) == 0:
        return
    per_block = max(1, block // len(knobs))
    k = len(knobs)
    for start in range(0, len(layouts), per_block):
        lay = layouts[start:start + per_block]
        rep = [np.repeat(lay[:, j], k) for j in range(5)]  # each layout once per knob row
        kn = [np.tile(knobs[:, j], len(lay)) for j in range(9)]
        yield Candidates(
            tp=rep[0], pp=rep[1], cp=rep[2], dp=rep[3], ep=rep[4],
            mbs=kn[0].astype(np.int64), vpp=kn[1].astype(np.int64), recompute=kn[2].astype(np.int64),
            recompute_frac=kn[3], zero=kn[4].astype(np.int64), sp=kn[5].astype(np.bool_),
            tp_overlap=kn[6].astype(np.bool_), ep_overlap=kn[7].astype(np.bool_), pp_inner=kn[8].astype(np.bool_),
        )


def layout_masks(tp: npt.NDArray[np.int64], pp: npt.NDArray[np.int64], cp: npt.NDArray[np.int64],
                 ep: npt.NDArray[np.int64], dp: npt.NDArray[np.int64], m: ModelArch, job: TrainingJob,
                 domain_size: int, sites: int = 1) -> dict[str, BoolArray]:
    """The rules that depend only on the parallel layout (not on micro-batch, recompute, ZeRO, ...).

    TP wider than the scale-up domain is allowed: such plans were run and measured (vTrain's TP16 on
    8-GPU nodes); their collectives are priced on the scale-out tier, so the search rarely picks them.
    ``domain_size`` is kept for callers; no layout rule depends on it any more.
    """
    del domain_size
    kv = m.n_kv_heads if m.attention.type != "MLA" else m.heads
    masks: dict[str, BoolArray] = {
        "tp_divides_heads": (m.heads % tp == 0) & ((kv % tp == 0) | (tp % kv == 0)),
        "pp_at_most_layers": pp <= m.layers,
        "cp_divides_sequence": job.seq_len % (2 * cp) == 0,
        "dp_divides_into_sites": dp % sites == 0,
    }
    if m.moe is not None:
        masks["ep_divides_experts"] = (m.moe.experts % ep == 0) & ((dp * cp) % ep == 0)
    else:
        masks["ep_divides_experts"] = ep == 1
    return {k: np.asarray(v, dtype=np.bool_) for k, v in masks.items()}


def _knob_rules(tp: Any, pp: Any, dp: Any, ep: Any, mbs: Any, vpp: Any, recompute: Any, frac: Any, sp: Any,
                tp_overlap: Any, ep_overlap: Any, inner: Any, m: ModelArch, job: TrainingJob,
                batch: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """The rules that involve the per-plan knobs, on columns or on arrays that broadcast together
    (layouts down, knob rows across). ``batch``: the two micro-batch rules (``_batch_rules``) when
    already computed."""
    divides, micro_multiple = _batch_rules(pp, dp, mbs, job) if batch is None else batch
    return {
        "global_batch_divides_into_micro_batches": divides,
        "vpp_needs_pipeline_and_layers": (vpp == 1) | ((pp > 1) & (m.layers >= pp * vpp)),
        "interleaving_needs_micro_batches_multiple_of_pp": (vpp == 1) | micro_multiple,
        "sequence_parallel_needs_tp": ~sp | (tp > 1),
        "tp_overlap_needs_sequence_parallel": ~tp_overlap | sp,
        "ep_overlap_needs_expert_parallel": ~ep_overlap | (ep > 1),
        "pipeline_inner_order_needs_pp_and_dp_without_ep": ~inner | ((pp > 1) & (dp > 1) & (ep == 1)),
        "recompute_fraction_only_with_full": (recompute == 2) | (frac == 1.0),
    }


def _batch_rules(pp: Any, dp: Any, mbs: Any, job: TrainingJob) -> tuple[Any, Any]:
    """(dp x micro-batch divides the global batch; the micro-batches per replica are a multiple of pp)."""
    return (job.global_batch % (dp * mbs) == 0,
            (job.global_batch // np.maximum(dp * mbs, 1)) % pp == 0)


def knob_masks(c: Candidates, m: ModelArch, job: TrainingJob) -> dict[str, BoolArray]:
    """The rules that involve the per-plan knobs (micro-batch, vpp, recompute, SP, overlaps)."""
    masks = _knob_rules(c.tp, c.pp, c.dp, c.ep, c.mbs, c.vpp, c.recompute, c.recompute_frac, c.sp, c.tp_overlap,
                        c.ep_overlap, c.pipeline_inner, m, job)
    return {k: np.asarray(v, dtype=np.bool_) for k, v in masks.items()}


def passing_blocks(space: SearchSpace, m: ModelArch, job: TrainingJob, layouts: npt.NDArray[np.int64],
                   block: int = 262_144) -> Iterator[tuple[Candidates, dict[str, int], int]]:
    """The product of ``layouts`` and the knob grid in blocks of about ``block`` rows, checked by the knob
    rules without materialising it: yields (the rows that pass every rule, the rows each rule rejects,
    the rows in the block). Rows come in the order of ``generate``."""
    for rows, counts, n, _, _ in _blocks(space, m, job, layouts, block, None):
        yield rows, counts, n


def fitting_blocks(space: SearchSpace, s: TrainingSetup, layouts: npt.NDArray[np.int64], block: int = 262_144
                   ) -> Iterator[tuple[Candidates, dict[str, int], int, int, MemoryColumns]]:
    """As ``passing_blocks``, keeping only the rows whose memory fits the device: yields (those rows, the
    rows each knob rule rejects, the rows in the block, the rows passing the knob rules, the rows' memory).

    Memory is priced on the grid of each layout and the knob axes it depends on (micro-batch, vpp,
    recompute, ZeRO, sequence parallelism), not on every row: the same columns as ``training_memory`` on
    the rows, to the last digit."""
    for rows, counts, n, passing, mem in _blocks(space, s.model, s.job, layouts, block, s):
        assert mem is not None
        yield rows, counts, n, passing, mem


def _on_axis(v: npt.NDArray[Any], axis: int, ndim: int) -> npt.NDArray[Any]:
    """``v`` laid along ``axis`` of an ``ndim``-axis grid (length 1 on the others)."""
    dims = [1] * ndim
    dims[axis] = -1
    return v.reshape(dims)


def _blocks(space: SearchSpace, m: ModelArch, job: TrainingJob, layouts: npt.NDArray[np.int64], block: int,
            setup: TrainingSetup | None
            ) -> Iterator[tuple[Candidates, dict[str, int], int, int, MemoryColumns | None]]:
    knobs = _knob_grid(space, job, m.moe is not None)
    axes, recomputes = _knob_axes(space, job, m.moe is not None)
    mem_axes = (len(axes[0]), len(axes[1]), len(axes[2]), len(axes[3]), len(axes[4]))  # mbs vpp recompute zero sp
    per_mem = int(np.prod(mem_axes))
    k = len(knobs)
    if len(layouts) == 0 or k == 0:
        return
    kc = [knobs[:, j] for j in range(9)]
    ints: list[npt.NDArray[np.int64]] = [kc[j].astype(np.int64) for j in (0, 1, 2, 4)]  # mbs vpp recompute zero
    flags: list[BoolArray] = [kc[j].astype(np.bool_) for j in (5, 6, 7, 8)]  # sp, tp/ep overlap, pp inner
    frac: npt.NDArray[np.float64] = kc[3]
    per_block = max(1, block // k)
    # the rules on the grid (layout, mbs, vpp, recompute, zero, sp, tp overlap, ep overlap, pp inner) whose
    # C order is the knob order: each rule is computed on the axes it reads, and counted there
    rc = recomputes[axes[2]]
    knob9 = [_on_axis(axes[0].astype(np.int64), 1, 9), _on_axis(axes[1].astype(np.int64), 2, 9),
             _on_axis(rc[:, 0].astype(np.int64), 3, 9), _on_axis(rc[:, 1], 3, 9),
             *(_on_axis(axes[j].astype(np.bool_), j + 1, 9) for j in (4, 5, 6, 7))]
    for start in range(0, len(layouts), per_block):
        lay = layouts[start:start + per_block]
        tp, pp, cp, dp, ep = (_on_axis(lay[:, j], 0, 9) for j in range(5))
        full = (len(lay), *(len(a) for a in axes))
        size = len(lay) * k
        rules = _knob_rules(tp, pp, dp, ep, knob9[0], knob9[1], knob9[2], knob9[3], knob9[4], knob9[5], knob9[6],
                            knob9[7], m, job)
        counts = {}
        small = []
        for name, rule in rules.items():
            r = np.asarray(rule, dtype=np.bool_)
            counts[name] = (r.size - int(np.count_nonzero(r))) * (size // r.size)  # each cell stands for size/r.size
            small.append(r)
        ok_small = np.ones((1,) * 9, dtype=np.bool_)
        for r in sorted(small, key=lambda r: r.size):  # the smallest first: the grid grows only as far as needed
            ok_small = ok_small & r
        passing = int(np.count_nonzero(ok_small)) * (size // ok_small.size)
        mem = None
        tail = k // per_mem  # knob rows per memory cell (tp overlap x ep overlap x pp inner)
        if setup is not None and passing:
            # memory on the grid of the axes it depends on (layout, mbs, vpp, recompute, zero, sp: the first ones)
            gm = training_memory(_memory_grid(lay, axes, recomputes), setup)
            fits = gm.fits
            if ok_small.shape[4] == 1:  # no rule reads ZeRO: AND along long runs (the fits spread over the tail)
                head = len(lay) * per_mem // (mem_axes[3] * mem_axes[4])  # layout x mbs x vpp x recompute
                by_rule = np.ascontiguousarray(np.broadcast_to(ok_small, (*full[:4], 1, *full[5:])))
                ok = np.empty((head, mem_axes[3], mem_axes[4] * tail), dtype=np.bool_)
                spread = np.repeat(fits.reshape(-1), tail).reshape(ok.shape)
                np.logical_and(by_rule.reshape(head, 1, -1), spread, out=ok)
            else:
                ok = np.empty(full, dtype=np.bool_)
                np.logical_and(ok_small, fits.reshape(*full[:6], 1, 1, 1), out=ok)
        else:
            ok = np.ascontiguousarray(np.broadcast_to(ok_small, full))
        li, ki = np.divmod(np.flatnonzero(ok), k)  # (layout, knob row) of each passing row, in C order
        lay_cols = [np.ascontiguousarray(lay[:, j]) for j in range(5)]
        if setup is not None and passing:
            mem = gm.at((len(lay), *mem_axes), li, ki // tail)
        rows = Candidates(
            tp=lay_cols[0][li], pp=lay_cols[1][li], cp=lay_cols[2][li], dp=lay_cols[3][li], ep=lay_cols[4][li],
            mbs=ints[0][ki], vpp=ints[1][ki], recompute=ints[2][ki], recompute_frac=frac[ki], zero=ints[3][ki],
            sp=flags[0][ki], tp_overlap=flags[1][ki], ep_overlap=flags[2][ki], pp_inner=flags[3][ki],
        )
        if setup is not None and mem is None:
            mem = training_memory(rows, setup)  # no row passes: empty columns
        yield rows, counts, len(lay) * k, passing, mem


def _memory_grid(lay: npt.NDArray[np.int64], axes: list[npt.NDArray[np.int64]],
                 recomputes: npt.NDArray[np.float64]) -> Candidates:
    """The plans of layouts ``lay`` x the knob axes memory depends on (mbs, vpp, recompute, zero, sp) as
    columns that broadcast on a 6-axis grid; the columns memory does not read are one broadcast value."""
    def on(v: npt.NDArray[Any], axis: int) -> npt.NDArray[Any]:
        dims = [1] * 6
        dims[axis] = -1
        return v.reshape(dims)

    rc = recomputes[axes[2]]
    unused = np.zeros((1,) * 6, dtype=np.bool_)
    return Candidates(
        tp=on(lay[:, 0], 0), pp=on(lay[:, 1], 0), cp=on(lay[:, 2], 0), dp=on(lay[:, 3], 0), ep=on(lay[:, 4], 0),
        mbs=on(axes[0].astype(np.int64), 1), vpp=on(axes[1].astype(np.int64), 2),
        recompute=on(rc[:, 0].astype(np.int64), 3), recompute_frac=on(rc[:, 1], 3),
        zero=on(axes[3].astype(np.int64), 4), sp=on(axes[4].astype(np.bool_), 5), tp_overlap=unused,
        ep_overlap=unused,
    )


def structural_masks(c: Candidates, m: ModelArch, job: TrainingJob, domain_size: int,
                     sites: int = 1) -> dict[str, BoolArray]:
    """Named rules a plan must satisfy whatever its cost. ``True`` = allowed."""
    return {**layout_masks(c.tp, c.pp, c.cp, c.ep, c.dp, m, job, domain_size, sites), **knob_masks(c, m, job)}
