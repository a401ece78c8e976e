"""The wide-area network between sites and users: region coordinates, measured RTT and throughput, distance models.

Entry points: ``load_regions``, ``great_circle_km``, ``measured_rtt`` (Azure P50 2024 and skyplane 2022 pings),
``fit_rtt_model`` / ``rtt_fit_report`` (RTT = overhead + 2·route factor·distance / fibre speed, fitted on one set,
checked on the other), ``ThroughputModel`` (measured iperf3 Gbit/s per pair, else a fit on distance) and
``kv_transfer_s`` (the KV cache of a prompt carried from a prefill site to a decode site). Data: ``place/data``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fleetwise.errors import SpecError

FloatArray = npt.NDArray[np.float64]
DATA = Path(__file__).parent / "data"
EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
FIBRE_KM_PER_S = 200_000.0  # light in silica fibre, refractive index ~1.5
LONG_PAIR_KM = 500.0  # the check counts pairs farther apart than this (short pairs are overhead-dominated)


@dataclass(frozen=True, slots=True)
class Region:
    """A cloud region or hub: key ``provider:region_id``, city and WGS84 coordinates (degrees)."""

    key: str
    display_name: str
    city: str
    country: str
    lat: float
    lon: float


@cache
def load_regions() -> dict[str, Region]:
    """Every region in ``data/regions.csv`` by key (coordinates: GeoNames CC BY 4.0 or Azure metadata)."""
    out: dict[str, Region] = {}
    with open(DATA / "regions.csv", newline="") as f:
        for r in csv.DictReader(f):
            key = f"{r['provider']}:{r['region_id']}"
            out[key] = Region(key, r["display_name"], r["city"], r["country"], float(r["lat"]), float(r["lon"]))
    return out


def region(key: str, field: str = "region") -> Region:
    """One region by key, or ``SpecError`` listing close keys."""
    regions = load_regions()
    if key not in regions:
        import difflib

        close = difflib.get_close_matches(key, list(regions), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SpecError(f"{field}: unknown region key {key!r} (keys look like provider:region_id, "
                        f"e.g. cn-hub:guizhou-guian){hint}")
    return regions[key]


def great_circle_km(lat1: FloatArray | float, lon1: FloatArray | float, lat2: FloatArray | float,
                    lon2: FloatArray | float) -> FloatArray:
    """Haversine distance in km between points given in degrees (broadcasts)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class RttSample:
    """Measured pairs of one source: region keys, distance (km) and RTT (ms)."""

    source: str
    pairs: list[tuple[str, str]]
    distance_km: FloatArray
    rtt_ms: FloatArray


def _sample(source: str, rows: list[tuple[str, str, float]]) -> RttSample:
    regions = load_regions()
    rows = [r for r in rows if r[0] in regions and r[1] in regions]
    a = [regions[r[0]] for r in rows]
    b = [regions[r[1]] for r in rows]
    d = great_circle_km(np.array([x.lat for x in a]), np.array([x.lon for x in a]),
                        np.array([x.lat for x in b]), np.array([x.lon for x in b]))
    return RttSample(source, [(r[0], r[1]) for r in rows], d, np.array([r[2] for r in rows], dtype=np.float64))


@cache
def measured_rtt(source: str) -> RttSample:
    """Measured RTT pairs: ``azure`` (P50, April 2024, CC BY 4.0) or ``skyplane`` (ping avg, 2022, Apache-2.0)."""
    if source == "azure":
        by_name = {r.display_name: r.key for r in load_regions().values() if r.key.startswith("azure:")}
        rows = []
        with open(DATA / "azure_rtt_p50_2024-04.csv", newline="") as f:
            for r in csv.DictReader(f):
                if r["src_region"] in by_name and r["dst_region"] in by_name:
                    rows.append((by_name[r["src_region"]], by_name[r["dst_region"]], float(r["rtt_ms"])))
        return _sample(source, rows)
    if source == "skyplane":
        with open(DATA / "skyplane_rtt_pairs_2022.csv", newline="") as f:
            rows = [(r["src_region"], r["dst_region"], float(r["rtt_ms"])) for r in csv.DictReader(f)]
        return _sample(source, rows)
    raise SpecError(f"RTT source must be one of azure, skyplane (got {source!r})")


@dataclass(frozen=True, slots=True)
class RttModel:
    """RTT = overhead + 2 · route_factor · distance / fibre speed (ms); fitted on ``fitted_on``."""

    overhead_ms: float
    route_factor: float
    fitted_on: str

    def rtt_ms(self, distance_km: FloatArray | float) -> FloatArray:
        return np.asarray(self.overhead_ms + 2e3 * self.route_factor * np.asarray(distance_km) / FIBRE_KM_PER_S,
                          dtype=np.float64)


def fit_rtt_model(sample: RttSample, min_km: float = 0.0) -> RttModel:
    """Least-absolute-relative-error fit of overhead and route factor on pairs farther than ``min_km``.

    Minimising |predicted/measured − 1| (iteratively reweighted least squares on the relative error) treats
    short and long pairs alike, which is what a median-relative-error check asks for.
    """
    keep = sample.distance_km > min_km
    d, y = sample.distance_km[keep], sample.rtt_ms[keep]
    if len(d) < 2:
        raise SpecError(f"RTT fit on {sample.source}: needs >= 2 pairs beyond {min_km} km (got {len(d)})")
    a = np.column_stack([np.ones_like(d), 2e3 * d / FIBRE_KM_PER_S])
    w = 1.0 / y
    coef: FloatArray = np.zeros(2)
    for _ in range(50):
        coef = np.asarray(np.linalg.lstsq(a * w[:, None], y * w, rcond=None)[0], dtype=np.float64)
        r = np.abs(a @ coef / y - 1.0)
        w = np.asarray(1.0 / (y * np.maximum(r, 1e-3) ** 0.5), dtype=np.float64)  # IRLS: L1 on relative error
    return RttModel(float(max(coef[0], 0.0)), float(coef[1]), sample.source)


@dataclass(frozen=True, slots=True)
class RttCheck:
    """How a model fitted on one set predicts the other, over pairs beyond ``min_km``."""

    model: RttModel
    checked_on: str
    pairs: int
    median_abs_error: float  # relative, e.g. 0.08 = 8 %
    p90_abs_error: float
    median_error: float  # signed: > 0 means the model predicts too long

    def to_dict(self) -> dict[str, object]:
        return {"fitted_on": self.model.fitted_on, "checked_on": self.checked_on, "pairs": self.pairs,
                "overhead_ms": self.model.overhead_ms, "route_factor": self.model.route_factor,
                "median_abs_error": self.median_abs_error, "p90_abs_error": self.p90_abs_error,
                "median_error": self.median_error}


def check_rtt_model(model: RttModel, sample: RttSample, min_km: float = LONG_PAIR_KM) -> RttCheck:
    """Relative error of ``model`` on ``sample`` pairs farther apart than ``min_km``."""
    keep = sample.distance_km > min_km
    err = model.rtt_ms(sample.distance_km[keep]) / sample.rtt_ms[keep] - 1.0
    return RttCheck(model, sample.source, int(keep.sum()), float(np.median(np.abs(err))),
                    float(np.percentile(np.abs(err), 90)), float(np.median(err)))


def rtt_fit_report() -> list[RttCheck]:
    """Fit on skyplane (AWS/GCP/Azure) and check on Azure P50, then the reverse (both fitted on pairs > 500 km)."""
    sky, az = measured_rtt("skyplane"), measured_rtt("azure")
    return [check_rtt_model(fit_rtt_model(sky, LONG_PAIR_KM), az),
            check_rtt_model(fit_rtt_model(az, LONG_PAIR_KM), sky)]


@cache
def default_rtt_model() -> RttModel:
    """The model used where no measurement exists: fitted on the skyplane AWS/GCP/Azure grid."""
    return fit_rtt_model(measured_rtt("skyplane"), LONG_PAIR_KM)


@cache
def _measured_pairs() -> dict[tuple[str, str], float]:
    """Measured RTT per ordered pair (Azure P50 preferred over skyplane where both exist)."""
    out: dict[tuple[str, str], float] = {}
    for source in ("skyplane", "azure"):
        s = measured_rtt(source)
        for (a, b), v in zip(s.pairs, s.rtt_ms, strict=True):
            out[(a, b)] = float(v)
    return out


def pair_rtt_ms(a: str, b: str) -> tuple[float, str] | None:
    """Measured RTT between two region keys (either direction) and its source, or None."""
    m = _measured_pairs()
    v = m.get((a, b), m.get((b, a)))
    return None if v is None else (v, "measured")


@dataclass(frozen=True, slots=True)
class ThroughputModel:
    """Achieved inter-region throughput (Gbit/s): measured iperf3 (64 streams) where known, else a distance fit.

    The fit is log(Gbit/s) = a + b·log(km) over the skyplane pairs (TCP throughput falls with RTT).
    """

    a: float
    b: float

    def gbit_per_s(self, distance_km: float) -> float:
        return float(math.exp(self.a + self.b * math.log(max(distance_km, 50.0))))


@cache
def _throughput_pairs() -> dict[tuple[str, str], float]:
    with open(DATA / "skyplane_throughput_pairs_2022.csv", newline="") as f:
        return {(r["src_region"], r["dst_region"]): float(r["gbit_per_s"]) for r in csv.DictReader(f)}


@cache
def throughput_model() -> ThroughputModel:
    """Fit of measured throughput on distance (skyplane 2022, pairs with known coordinates)."""
    regions = load_regions()
    d, g = [], []
    for (a, b), v in _throughput_pairs().items():
        if a in regions and b in regions and v > 0:
            ra, rb = regions[a], regions[b]
            d.append(float(great_circle_km(ra.lat, ra.lon, rb.lat, rb.lon)))
            g.append(v)
    x, y = np.log(np.maximum(np.array(d), 50.0)), np.log(np.array(g))
    b, a = np.polyfit(x, y, 1)
    return ThroughputModel(float(a), float(b))


def pair_gbit_per_s(a: str, b: str, distance_km: float) -> tuple[float, str]:
    """Achieved Gbit/s between two region keys: measured (either direction) or the distance fit."""
    m = _throughput_pairs()
    v = m.get((a, b), m.get((b, a)))
    if v is not None:
        return v, "measured"
    return throughput_model().gbit_per_s(distance_km), "model"


def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, tokens: float, bytes_per_value: float) -> float:
    """KV bytes of ``tokens`` tokens: 2 (K and V) · layers · kv heads · head dim · bytes (research §4.11)."""
    return 2.0 * layers * kv_heads * head_dim * bytes_per_value * tokens


def kv_transfer_s(kv_bytes: float, rtt_s: float, gbit_per_s: float) -> float:
    """Time to carry a prompt's KV cache from a prefill site to a decode site: RTT/2 + bytes / bandwidth."""
    return rtt_s / 2.0 + kv_bytes * 8.0 / (gbit_per_s * 1e9)
