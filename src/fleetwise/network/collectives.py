"""Collective-communication costs over a system's tiers, column-wise (α–β with achieved bus bandwidth).

Entry points: ``Network`` (the tiers of one system with fitted efficiencies) and its methods
``all_reduce_s``, ``all_gather_s`` (= reduce-scatter), ``all_to_all_s``, ``p2p_s``. Every method takes
arrays: bytes per rank, group size, and the stride of the group in the rank order (how many
consecutive ranks lie inside each member), and returns seconds.

Model: nccl-tests bus bandwidth ``busbw(S) = B_max·S/(S + S_half)`` (fitted per tier on micro-benchmarks),
so a collective moving ``S`` bytes takes ``max(factor·(S + S_half)/B_max, α)``, with ``factor``
``2(g-1)/g`` for all-reduce and ``(g-1)/g`` for all-gather / reduce-scatter (Thakur et al. 2005).
A group that does not fit in one scale-up domain runs hierarchically: inside each domain on scale-up,
and across domains on 1/k of the data per rank, each of the k ranks of a domain on its own NIC share
(rail-optimised networks), divided by the oversubscription.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.types import Accelerator, System, Tier
from fleetwise.network.curves import CollectiveCurves, CollectiveEfficiency

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TierModel:
    """One tier with its fitted efficiency."""

    tier: Tier
    eff: CollectiveEfficiency
    a2a: CollectiveEfficiency
    domain_size: int  # ranks that share this tier's fast path (scale-up domain); 0 for scale-out
    in_switch: CollectiveEfficiency | None = None  # NVLS all-reduce, on switched NVLink domains only

    def busbw_max(self, g: FloatArray, eff: CollectiveEfficiency) -> FloatArray:
        """Plateau bus bandwidth (bytes/s) of a group of ``g`` ranks on this tier."""
        link = eff.basis_bytes_per_s or self.tier.bw_bytes_per_s
        frac = eff.frac(g)
        if self.tier.topology == "full_mesh" and not eff.by_group_size and self.domain_size > 1:
            # a full mesh gives each rank one link per peer: fewer peers, less bandwidth (MI300X, HCCS)
            frac = frac * (np.maximum(g, 2.0) - 1.0) / (self.domain_size - 1.0)
        return np.asarray(frac * link / self.tier.oversubscription, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Network:
    """The scale-up and scale-out tiers of one system, ready to price collectives."""

    scaleup: TierModel
    scaleout: TierModel
    domain_size: int

    def ranks_in_domain(self, group: IntArray, stride: IntArray) -> IntArray:
        """Members of a group (``group`` ranks, ``stride`` apart) that share one scale-up domain."""
        per = np.maximum(self.domain_size // np.maximum(stride, 1), 1)
        return np.asarray(np.minimum(per, group), dtype=np.int64)

    def spans_scaleout(self, group: IntArray, stride: IntArray) -> npt.NDArray[np.bool_]:
        return np.asarray(group > self.ranks_in_domain(group, stride))

    def _ring_s(self, bytes_: FloatArray, group: IntArray, stride: IntArray, phases: float) -> FloatArray:
        """Ring collective moving ``phases·(g-1)/g`` of ``bytes_`` per rank (2 all-reduce, 1 all-gather).

        Time = factor·(S + S_half)/B_max: the S_half ramp of the measured busbw curve already holds the
        latency, so the small-message floor α is a lower bound, not added on top (vTrain's A100 nccl-tests
        LUT: 8-GPU 2 MiB all-reduce 93 us, 64 MiB 580 us; the ramp gives 78 and 568 us).
        A group spanning domains runs hierarchically (NCCL's rings over rails): reduce-scatter inside each
        domain, the inter-domain collective on 1/k of the data through each of the k ranks' own NICs, then
        all-gather inside the domain.
        """
        g = np.asarray(group, dtype=np.float64)
        k = self.ranks_in_domain(group, stride).astype(np.float64)  # members per domain
        outside = self.spans_scaleout(group, stride)
        nodes = np.maximum(g / np.maximum(k, 1.0), 1.0)
        up, out = self.scaleup.eff, self.scaleout.eff

        def ramp(b: FloatArray, n: FloatArray, bw: FloatArray, e: CollectiveEfficiency) -> FloatArray:
            t = phases * (n - 1.0) / np.maximum(n, 1.0) * (b + e.s_half_bytes) / bw
            return np.asarray(np.where(n > 1, np.maximum(t, e.alpha_s), 0.0))

        intra = ramp(bytes_, k, self.scaleup.busbw_max(k, up), up)
        inter = ramp(bytes_ / np.maximum(k, 1.0), nodes, self.scaleout.busbw_max(nodes, out), out)
        t = np.where(outside, intra + inter, ramp(bytes_, g, self.scaleup.busbw_max(g, up), up))
        return np.asarray(np.where(g > 1, t, 0.0), dtype=np.float64)

    def all_reduce_s(self, bytes_: FloatArray, group: IntArray, stride: IntArray) -> FloatArray:
        """All-reduce of ``bytes_`` per rank: ring, or in-switch (NVLS) inside a switched domain when faster.

        NCCL picks the algorithm per call; the faster of the measured curves stands in for that choice.
        """
        g = np.asarray(group, dtype=np.float64)
        ring = self._ring_s(bytes_, group, stride, 2.0)
        nvls = self.scaleup.in_switch
        if nvls is None:
            return ring
        inside = ~self.spans_scaleout(group, stride)
        factor = 2.0 * (g - 1.0) / np.maximum(g, 1.0)
        t = factor * (bytes_ + nvls.s_half_bytes) / (nvls.busbw_frac * self.scaleup.tier.bw_bytes_per_s)
        t = np.maximum(t, nvls.alpha_s)  # the ramp holds the latency; alpha is its floor
        return np.asarray(np.where(inside & (g > 1), np.minimum(ring, t), ring), dtype=np.float64)

    def all_gather_s(self, bytes_: FloatArray, group: IntArray, stride: IntArray) -> FloatArray:
        """All-gather (or reduce-scatter) whose full result is ``bytes_`` per rank."""
        return self._ring_s(bytes_, group, stride, 1.0)

    def all_to_all_s(self, bytes_: FloatArray, group: IntArray, stride: IntArray) -> FloatArray:
        """All-to-all where each rank sends ``bytes_`` in all (a share to every peer).

        Traffic to peers in the same domain uses scale-up; the rest leaves through the rank's NIC
        (the single-NIC ceiling across nodes); the two proceed in parallel.
        """
        g = np.asarray(group, dtype=np.float64)
        local = self.ranks_in_domain(group, stride).astype(np.float64)
        up = self.scaleup.a2a
        out = self.scaleout.a2a
        local_bytes = bytes_ * (local - 1.0) / np.maximum(g, 1.0)
        remote_bytes = bytes_ * (g - local) / np.maximum(g, 1.0)
        t_up = local_bytes / (up.frac(local) * self.scaleup.tier.bw_bytes_per_s)
        t_out = remote_bytes / (out.frac(g) * self.scaleout.tier.bw_bytes_per_s / self.scaleout.tier.oversubscription)
        alpha = np.where(g > local, out.alpha_s, up.alpha_s)
        return np.asarray(np.where(g > 1, np.maximum(t_up, t_out) + alpha, 0.0), dtype=np.float64)

    def p2p_s(self, bytes_: FloatArray, crosses_domain: npt.NDArray[np.bool_]) -> FloatArray:
        """Point-to-point send of ``bytes_`` between neighbouring pipeline stages."""
        up, out = self.scaleup, self.scaleout
        bw = np.where(crosses_domain, out.eff.busbw_frac * out.tier.bw_bytes_per_s / out.tier.oversubscription,
                      up.eff.busbw_frac * up.tier.bw_bytes_per_s)
        alpha = np.where(crosses_domain, out.tier.latency_s, up.tier.latency_s)
        return np.asarray(bytes_ / bw + alpha, dtype=np.float64)


def build_network(system: System, accel: Accelerator, table: CollectiveCurves) -> Network:
    """Price the tiers of ``system`` with the efficiencies fitted for its accelerator."""
    up_eff = table.collective(accel.id, "scaleup")
    out_eff = table.collective(accel.id, "scaleout", system.scaleout_fabric_id)
    in_switch = table.in_switch_all_reduce(accel.id) if system.scaleup.topology == "switched" else None
    up = TierModel(system.scaleup, up_eff, table.all_to_all(accel.id, "scaleup"), system.domain_size, in_switch)
    out_tier = system.scaleout_tier(accel.scaleout_gbit_per_chip)
    out = TierModel(out_tier, out_eff, table.all_to_all(accel.id, "scaleout"), 0)
    return Network(up, out, system.domain_size)
