"""The edge tier: speculative decoding with the draft model at the edge and verification in the cloud.

Each round the edge drafts ``gamma`` tokens, sends them to the cloud, which verifies them in one step and
returns; the round pays one RTT. Expected tokens per round E = (1 − a^(γ+1)) / (1 − a) for acceptance a
(Leviathan et al. 2023, eq. 1). Split speculation wins per token iff (γ·t_draft + RTT + t_verify)/E < t_AR
(research/energy-network-placement.md §4.11). Entry points: ``speculative_round``, ``break_even_rtt_s``,
``speculative_report`` (every edge site x cloud site of a scenario).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fleetwise.catalog.loader import Catalog
from fleetwise.errors import SpecError
from fleetwise.place.problem import PlacementProblem
from fleetwise.place.spec import Scenario

GAMMAS = (1, 2, 3, 4, 5, 6, 8)
ACCEPTANCE = (0.6, 0.7, 0.8)  # per-token acceptance rates reported for 7B drafts of 70B targets span ~0.6-0.8


def expected_tokens(acceptance: float, gamma: int) -> float:
    """Tokens per verification round: (1 − a^(γ+1)) / (1 − a)."""
    if not 0.0 <= acceptance < 1.0:
        raise SpecError(f"acceptance must be in [0, 1) (got {acceptance})")
    if gamma < 1:
        raise SpecError(f"gamma must be >= 1 (got {gamma})")
    return (1.0 - acceptance ** (gamma + 1)) / (1.0 - acceptance)


@dataclass(frozen=True, slots=True)
class SpeculativeRound:
    """Per-token time of split speculative decoding vs plain autoregressive decoding in the cloud."""

    gamma: int
    acceptance: float
    rtt_s: float
    s_per_token: float
    autoregressive_s_per_token: float

    @property
    def speedup(self) -> float:
        return self.autoregressive_s_per_token / self.s_per_token

    @property
    def pays(self) -> bool:
        return self.s_per_token < self.autoregressive_s_per_token


def speculative_round(draft_s: float, verify_s: float, autoregressive_s: float, rtt_s: float, acceptance: float,
                      gamma: int) -> SpeculativeRound:
    """Per-token time of one (γ, a) setting.

    Args:
        draft_s: the draft model's time per token at the edge, s.
        verify_s: the target model's time to verify γ+1 tokens in one step in the cloud, s.
        autoregressive_s: the target model's time per token without speculation (TPOT), s.
        rtt_s: edge-to-cloud round trip, s.
    """
    e = expected_tokens(acceptance, gamma)
    return SpeculativeRound(gamma, acceptance, rtt_s, (gamma * draft_s + rtt_s + verify_s) / e, autoregressive_s)


def break_even_rtt_s(draft_s: float, verify_s: float, autoregressive_s: float, acceptance: float) -> tuple[float, int]:
    """The largest RTT at which split speculation still pays, and the γ that reaches it (max over GAMMAS)."""
    best = max((expected_tokens(acceptance, g) * autoregressive_s - g * draft_s - verify_s, g) for g in GAMMAS)
    return max(best[0], 0.0), best[1]


def _tpot_s(model: str, chip: str, catalog: Catalog, tpot_ms: float, input_tokens: float,
            output_tokens: float) -> float | None:
    """TPOT of the fastest single-stream plan of ``model`` on one node of ``chip`` (None if nothing fits)."""
    from fleetwise.place.problem import serving_candidates

    accel = catalog.accelerator(chip)
    best = serving_candidates(catalog, model, chip, max(1, min(8, accel.scaleup_domain or 1)), 60.0,
                              tpot_ms / 1e3, input_tokens, output_tokens, 1, "time")
    return best[0].tpot_s if best else None


def speculative_report(sc: Scenario, p: PlacementProblem, catalog: Catalog) -> list[dict[str, object]]:
    """For every edge site and cloud site (first chip type of each): break-even RTT and the gain at their RTT.

    The draft is the cascade's small model on the edge chip; the target is the scenario's model in the cloud.
    Verification of γ+1 tokens is taken as one decode step (memory-bound at small batch), so t_verify = TPOT.
    """
    if sc.cascade is None:
        return []
    from fleetwise.place.network import default_rtt_model, great_circle_km

    out: list[dict[str, object]] = []
    tpot_ms = 10_000.0
    cloud_tpot: dict[str, float | None] = {}
    for e in np.nonzero(p.site_is_edge)[0]:
        edge_chip = p.chip_ids[int(np.argmax(p.on_hand[e] + p.rent_max[e]))]
        draft = _tpot_s(sc.cascade.model, edge_chip, catalog, tpot_ms, sc.input_tokens, sc.output_tokens)
        if draft is None:
            continue
        for s in np.nonzero(~p.site_is_edge)[0]:
            chip = p.chip_ids[int(np.argmax(p.on_hand[s] + p.rent_max[s]))]
            if chip not in cloud_tpot:
                cloud_tpot[chip] = _tpot_s(sc.model, chip, catalog, tpot_ms, sc.input_tokens, sc.output_tokens)
            target = cloud_tpot[chip]
            if target is None:
                continue
            km = float(great_circle_km(p.site_lat[e], p.site_lon[e], p.site_lat[s], p.site_lon[s]))
            rtt = float(default_rtt_model().rtt_ms(km)) / 1e3 if km >= 50 else sc.network.metro_rtt_ms / 1e3
            rows = {}
            for a in ACCEPTANCE:
                be, g = break_even_rtt_s(draft, target, target, a)
                best = max((speculative_round(draft, target, target, rtt, a, g2) for g2 in GAMMAS),
                           key=lambda r: r.speedup)
                need = max((expected_tokens(a, g2) * target - rtt - target) / g2 for g2 in GAMMAS)
                rows[f"a={a}"] = {"break_even_rtt_ms": be * 1e3, "gamma_at_break_even": g,
                                  "best_gamma": best.gamma, "speedup_at_rtt": best.speedup, "pays": best.pays,
                                  "draft_ms_per_token_needed": max(need, 0.0) * 1e3}
            out.append({"edge_site": p.site_ids[e], "edge_chip": edge_chip, "draft_ms_per_token": draft * 1e3,
                        "cloud_site": p.site_ids[s], "cloud_chip": chip, "target_tpot_ms": target * 1e3,
                        "rtt_ms": rtt * 1e3, "by_acceptance": rows})
    return out
