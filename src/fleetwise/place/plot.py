"""A map picture of a placement: sites (size = power drawn), demand regions (size = rate) and flows (width = rate).

Entry point: ``draw_map(placement, path)``; PNG or SVG by the file suffix. matplotlib is imported here only
(``pip install 'fleetwise[plot]'``). Plain longitude/latitude axes; no coastlines are shipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fleetwise.errors import FleetwiseError, SpecError
from fleetwise.place.solve import Placement


def draw_map(pl: Placement, path: str | Path, title: str = "") -> Path:
    """Write the map of ``pl`` to ``path`` (.png or .svg) and return the path."""
    out = Path(path)
    if out.suffix.lower() not in (".png", ".svg"):
        raise SpecError(f"--map: the file must end in .png or .svg (got {out.name!r})")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise FleetwiseError("the map needs matplotlib: pip install 'fleetwise[plot]'") from None
    p = pl.problem
    fig, ax = plt.subplots(figsize=(8, 6.5))
    routing = pl.routing
    peak = max(float(routing.max()), 1e-9)
    for d in range(len(p.demand_ids)):
        for s in range(len(p.site_ids)):
            r = float(routing[d, s])
            if r > 1e-6:
                edge = bool(p.site_is_edge[s])
                ax.plot([p.demand_lon[d], p.site_lon[s]], [p.demand_lat[d], p.site_lat[s]], "-",
                        color="tab:green" if edge else "tab:blue", alpha=0.55, lw=0.8 + 5.0 * r / peak, zorder=1)
    kw = pl.site_power_w() / 1e3
    used = kw > 1e-9
    for is_edge, marker, colour, label in ((False, "s", "tab:red", "cloud / hub site"),
                                           (True, "^", "tab:green", "edge site")):
        m = p.site_is_edge == is_edge
        ax.scatter(p.site_lon[m & ~used], p.site_lat[m & ~used], s=40, marker=marker, facecolors="none",
                   edgecolors=colour, zorder=3, label=f"{label} (idle)")
        ax.scatter(p.site_lon[m & used], p.site_lat[m & used], s=40 + 12 * kw[m & used], marker=marker,
                   color=colour, alpha=0.85, zorder=3, label=f"{label} (size: kW)")
    seen: dict[tuple[float, float], float] = {}
    for d in range(len(p.demand_ids)):
        key = (round(float(p.demand_lat[d]), 2), round(float(p.demand_lon[d]), 2))
        seen[key] = seen.get(key, 0.0) + float(p.rate_rps[d])
    lat = np.array([k[0] for k in seen])
    lon = np.array([k[1] for k in seen])
    ax.scatter(lon, lat, s=[20 + 6 * v for v in seen.values()], color="gold", edgecolors="black", zorder=2, alpha=0.7,
               label="demand (size: req/s)")
    for s, sid in enumerate(p.site_ids):
        ax.annotate(f"{sid}\n{kw[s]:.0f} kW" if used[s] else sid, (p.site_lon[s], p.site_lat[s]), fontsize=7,
                    xytext=(4, -10 if p.site_is_edge[s] else 4), textcoords="offset points")
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.set_aspect(1.0 / max(np.cos(np.radians(float(np.mean(p.site_lat)))), 0.2))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    t = pl.totals()
    ax.set_title(title or f"{pl.objective}: ${t['cost_usd_per_h']:.1f}/h, {t['carbon_kg_per_h']:.1f} kg CO2/h, "
                          f"SLO met {t['slo_met_share']:.1%}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
