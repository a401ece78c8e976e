"""Prefill and decode in different sites: what carrying the KV cache over the WAN costs, per site pair.

A prompt's KV cache (2 · layers · KV heads · head dim · bytes · prompt tokens) travels from the prefill site to
the decode site in RTT/2 + bytes / achieved bandwidth (research §4.11); the split is worth considering only
when that is a small share of the TTFT SLO. Entry point: ``pd_split_report(scenario, problem, catalog)``.
"""

from __future__ import annotations

import numpy as np

from fleetwise.catalog.loader import Catalog
from fleetwise.place.network import (
    default_rtt_model,
    great_circle_km,
    kv_cache_bytes,
    kv_transfer_s,
    pair_gbit_per_s,
    pair_rtt_ms,
)
from fleetwise.place.problem import PlacementProblem
from fleetwise.place.spec import Scenario

KV_BYTES_PER_VALUE = 1.0  # fp8/int8 KV, what the serving search picks for these plans; bf16 doubles the bytes
SMALL_SHARE = 0.1  # "split only when the transfer is << the TTFT SLO": at most 10 % of it


def pd_split_report(sc: Scenario, p: PlacementProblem, catalog: Catalog, top: int = 10) -> list[dict[str, object]]:
    """Cloud site pairs with different chip types: KV transfer time of one prompt and its share of the SLO.

    Attention with multi-head latent KV (MLA) stores less than this per-head count; the figure is then an
    upper bound.
    """
    m = catalog.model(sc.model, "model")
    kv = kv_cache_bytes(m.layers, m.kv_heads or m.heads, m.head_dim, sc.input_tokens, KV_BYTES_PER_VALUE)
    slo = float(p.ttft_slo_s.min()) if len(p.ttft_slo_s) else float("inf")
    keys = {s.id: s.region for s in sc.sites}
    cloud = [int(s) for s in np.nonzero(~p.site_is_edge)[0]]
    chip = {s: p.chip_ids[int(np.argmax(p.on_hand[s] + p.rent_max[s]))] for s in cloud}
    rows: list[dict[str, object]] = []
    for a in cloud:
        for b in cloud:
            if a == b or chip[a] == chip[b]:
                continue
            km = float(great_circle_km(p.site_lat[a], p.site_lon[a], p.site_lat[b], p.site_lon[b]))
            ka, kb = keys[p.site_ids[a]], keys[p.site_ids[b]]
            measured = pair_rtt_ms(ka, kb) if ka and kb else None
            rtt_ms = measured[0] if measured else float(default_rtt_model().rtt_ms(km))
            gbit, how = pair_gbit_per_s(ka or "", kb or "", km)
            t = kv_transfer_s(kv, rtt_ms / 1e3, gbit)
            rows.append({"prefill_site": p.site_ids[a], "prefill_chip": chip[a], "decode_site": p.site_ids[b],
                         "decode_chip": chip[b], "km": km, "rtt_ms": rtt_ms, "gbit_per_s": gbit,
                         "bandwidth_source": how, "kv_mb_per_prompt": kv / 1e6, "transfer_ms": t * 1e3,
                         "share_of_ttft_slo": t / slo, "worth_considering": t <= SMALL_SHARE * slo})
    rows.sort(key=lambda r: float(r["transfer_ms"]))  # type: ignore[arg-type]
    return rows[:top]
