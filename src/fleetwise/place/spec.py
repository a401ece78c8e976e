"""Placement scenarios as YAML: sites (cloud regions, hubs, edge), demand per user region, network overrides.

Entry points: ``load_scenario(path)`` → ``Scenario`` (frozen pydantic, ``extra="forbid"``; errors name the file
and field, what is allowed and what was given), ``bundled_scenarios()``. Example files: ``place/scenarios/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fleetwise.errors import SpecError

SCENARIOS = Path(__file__).parent / "scenarios"
Objective = Literal["cost", "energy", "carbon", "weighted"]
OBJECTIVES: tuple[Objective, ...] = ("cost", "energy", "carbon", "weighted")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rent(_Strict):
    """Chips that can be rented at a site on top of those on hand."""

    usd_per_chip_hour: float = Field(gt=0, le=1000)
    max_chips: int = Field(gt=0, le=10_000_000)


class SiteSpec(_Strict):
    """A cloud region, national hub or edge site. Position from ``region`` (a regions.csv key) or lat/lon."""

    id: str = Field(min_length=1, max_length=64)
    region: str | None = Field(default=None, description="region key, e.g. cn-hub:guizhou-guian")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    edge: bool = False
    chips: dict[str, int] = Field(default_factory=dict, description="accelerator id -> chips on hand")
    chip_usd_per_hour: dict[str, float] = Field(default_factory=dict,
                                                description="accelerator id -> cost of an owned chip-hour; "
                                                            "default: catalog price over 4 years at 80 % use")
    rent: dict[str, Rent] = Field(default_factory=dict)
    power_kw: float | None = Field(default=None, gt=0, le=1e7, description="facility power limit, kW")
    pue: float = Field(default=1.3, ge=1.0, le=3.0)
    gco2_per_kwh: float | None = Field(default=None, ge=0, le=2000, description="default: region_energy.csv")
    usd_per_kwh: float | None = Field(default=None, ge=0, le=10, description="default: region_energy.csv")
    egress_usd_per_gb: float = Field(default=0.0, ge=0, le=10)

    @model_validator(mode="after")
    def _position(self) -> SiteSpec:
        if self.region is None and (self.lat is None or self.lon is None):
            raise ValueError("give region (a key of regions.csv) or both lat and lon")
        for k, n in self.chips.items():
            if n < 0:
                raise ValueError(f"chips.{k} must be >= 0 (got {n})")
        if not self.chips and not self.rent:
            raise ValueError("a site needs chips on hand or chips to rent")
        return self


class DemandSpec(_Strict):
    """Traffic from one user region: rate, SLOs, access latency to the metro network."""

    id: str = Field(min_length=1, max_length=64)
    region: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    rate_rps: float = Field(gt=0, le=1e7, description="requests per second")
    ttft_ms: float = Field(gt=0, le=600_000, description="time to first token at the user, incl. network")
    tpot_ms: float = Field(gt=0, le=60_000)
    access_rtt_ms: float = Field(default=10.0, ge=0, le=1000,
                                 description="user to the nearest metro point (Ookla fixed median ~9 ms)")

    @model_validator(mode="after")
    def _position(self) -> DemandSpec:
        if self.region is None and (self.lat is None or self.lon is None):
            raise ValueError("give region (a key of regions.csv) or both lat and lon")
        return self


class CascadeRule(_Strict):
    """Route to the small model every request whose prompt is at most ``max_input_tokens`` long."""

    max_input_tokens: int = Field(gt=0, le=10_000_000)
    trace: str = Field(default="azure_conv", description="trace whose prompt lengths give the share (file or name)")


class CascadeSpec(_Strict):
    """Edge tier: a share of each region's requests is answered by ``model`` (a small model).

    The share is given, or derived from ``rule`` (prompt length cut-off) over a trace's prompt lengths.
    """

    model: str
    share: float | None = Field(default=None, gt=0, lt=1)
    rule: CascadeRule | None = None

    @model_validator(mode="after")
    def _one(self) -> CascadeSpec:
        if (self.share is None) == (self.rule is None):
            raise ValueError("give exactly one of share (0..1) or rule (max_input_tokens)")
        return self

    def resolved_share(self) -> float:
        """The share given, or the trace's share of prompts within the rule's cut-off."""
        if self.share is not None:
            return self.share
        assert self.rule is not None
        from fleetwise.workload.traces import load_trace

        tr = load_trace(self.rule.trace)
        share = float((tr.input_tokens <= self.rule.max_input_tokens).mean())
        if not 0.0 < share < 1.0:
            raise SpecError(f"cascade.rule: max_input_tokens {self.rule.max_input_tokens} sends {share:.0%} of "
                            f"{self.rule.trace} prompts to the small model; choose a cut-off giving a share in (0, 1)")
        return share


class PairRtt(_Strict):
    a: str
    b: str
    rtt_ms: float = Field(ge=0, le=2000)


class NetworkSpec(_Strict):
    rtt: list[PairRtt] = Field(default_factory=list, description="measured RTT overrides between ids")
    metro_rtt_ms: float = Field(default=2.0, ge=0, le=100, description="RTT within one city (site to users)")
    edge_radius_km: float = Field(default=100.0, gt=0, le=5000,
                                  description="an edge site answers only users within this distance (its metro)")
    edge_rtt_ms: float = Field(default=1.0, ge=0, le=100,
                               description="RTT from a city's users to an edge site there (Huawei IEC: 1-5 ms)")


class TrainingSpec(_Strict):
    """One training job to place: model, tokens, and the DiLoCo settings to compare with synchronous DP."""

    model: str
    tokens: float = Field(gt=0)
    seq_len: int = Field(default=4096, gt=0, le=1_048_576)
    global_batch: int | None = Field(default=None, gt=0)
    inner_steps: int = Field(default=100, gt=0, le=100_000, description="DiLoCo H: inner steps per outer step")
    sync_bytes_per_param: float = Field(default=1.0, gt=0, le=4, description="1 = int8 pseudo-gradients")
    link_gbit: float | None = Field(default=None, gt=0, description="site link; default: the network model")


class Scenario(_Strict):
    """A placement question: one model served (plus an optional edge cascade) across sites, or a training job."""

    name: str
    description: str = ""
    model: str = Field(description="model served in the cloud tier")
    input_tokens: float = Field(gt=0, le=10_000_000)
    output_tokens: float = Field(gt=0, le=10_000_000)
    sites: list[SiteSpec] = Field(min_length=1)
    demand: list[DemandSpec] = Field(default_factory=list)
    cascade: CascadeSpec | None = None
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    objective: Objective = "cost"
    carbon_usd_per_t: float = Field(default=100.0, ge=0, le=100_000, description="carbon price for 'weighted'")
    utilisation: float = Field(default=0.85, gt=0, lt=1, description="highest planned load per replica")
    plans_per_chip: int = Field(default=4, ge=1, le=20, description="candidate serving plans per chip and model")
    training: TrainingSpec | None = None

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        for kind, ids in (("sites", [s.id for s in self.sites]), ("demand", [d.id for d in self.demand])):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"{kind}: ids must be unique (repeated: {', '.join(dup)})")
        return self


def _format(path: str, exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        given = e.get("input")
        shown = repr(given) if not isinstance(given, dict | list) else type(given).__name__
        parts.append(f"{loc}: {e['msg']} (got {shown[:80]})")
    more = f" (+{len(exc.errors()) - 5} more)" if len(exc.errors()) > 5 else ""
    return f"{path}: " + "; ".join(parts) + more


def parse_scenario(data: object, where: str = "scenario") -> Scenario:
    """Validate a scenario mapping; ``SpecError`` names ``where`` and the field."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}: a scenario must be a mapping (got {type(data).__name__})")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format(where, exc)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file, or a bundled scenario by name (``china``); see ``bundled_scenarios``."""
    p = Path(path)
    if not p.is_file():
        named = SCENARIOS / f"{path}.yaml"
        if named.is_file():
            p = named
        else:
            raise SpecError(f"{path}: no such scenario file (bundled: {', '.join(bundled_scenarios())})")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_scenario(data, str(p))


def bundled_scenarios() -> list[str]:
    return sorted(f.stem for f in SCENARIOS.glob("*.yaml"))
