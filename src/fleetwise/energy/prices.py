"""Sourced accelerator prices (purchase and rent) and the hardware cost per chip-hour that every cost uses.

Entry points: ``load_prices()`` parses ``energy/data/prices.yaml`` (each fact with kind, scope, quality and
source); ``planning_purchase(id)`` / ``planning_rent(id)`` pick the fact a plan is priced with;
``hardware_cost(accel, site, ...)`` resolves one ``ChipCost`` (USD per chip-hour and the basis it came from).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fleetwise.catalog.loader import format_validation_error, load_yaml_file
from fleetwise.catalog.types import Accelerator
from fleetwise.errors import SpecError

HOURS_PER_YEAR = 8760.0

PRICES_FILE = Path(__file__).parent / "data" / "prices.yaml"
Pricing = Literal["purchase", "rent"]
PRICINGS: tuple[Pricing, ...] = ("purchase", "rent")
Quality = Literal["primary", "press", "secondary", "low"]
# Which fact prices a plan: better quality first (``low`` only brackets, never plans), a bare-chip scope
# before a baseboard share (system shares include CPUs and network and are not comparable), the most
# recent, then the most direct kind of observation.
QUALITY_RANK = {"primary": 0, "press": 1, "secondary": 2}
SCOPE_RANK = {"chip": 0, "card": 0, "module_share": 1}
KIND_RANK = {"list": 0, "street": 1, "press_report": 2, "analyst_estimate": 3}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Fact(_Strict):
    usd: float = Field(gt=0.0, le=10_000_000.0)
    usd_low: float | None = Field(default=None, gt=0.0)
    usd_high: float | None = Field(default=None, gt=0.0)
    original: str | None = None
    fx: str | None = None
    as_of: str | None = None
    source: str = Field(min_length=8)
    read_via: str | None = None
    quality: Quality
    derived: bool = False
    estimate: bool = False
    note: str | None = None
    variant: str | None = None

    @model_validator(mode="after")
    def _within_range(self) -> _Fact:
        lo, hi = self.usd_low or self.usd, self.usd_high or self.usd
        if not lo <= self.usd <= hi:
            raise ValueError(f"usd {self.usd} must lie within usd_low..usd_high ({lo}..{hi})")
        return self


class PurchaseFact(_Fact):
    """One published purchase price (USD per chip, or per chip's share of a module or system)."""

    kind: Literal["list", "street", "analyst_estimate", "press_report"]
    scope: Literal["chip", "card", "module_share", "system_share"]
    year: int | None = Field(default=None, ge=2015, le=2100)


class RentFact(_Fact):
    """One published rental price, USD per chip-hour."""

    usd: float = Field(gt=0.0, le=1000.0)
    pricing: Literal["on_demand", "spot", "reserved_1y", "reserved_3y", "capacity_block", "market"]
    provider: str | None = None
    offer: str | None = None
    region: str | None = None
    per_instance_usd: float | None = Field(default=None, gt=0.0)
    chips_per_instance: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _per_chip(self) -> RentFact:
        if self.per_instance_usd is not None and self.chips_per_instance is not None:
            per_chip = self.per_instance_usd / self.chips_per_instance
            if abs(per_chip - self.usd) > 0.01 * self.usd + 0.001:
                raise ValueError(f"usd {self.usd} must equal per_instance_usd / chips_per_instance ({per_chip:.4f})")
        return self


class ChipPrices(_Strict):
    purchase: tuple[PurchaseFact, ...] = ()
    rent_per_chip_hour: tuple[RentFact, ...] = ()
    notes: str | None = None


class PricesFile(_Strict):
    schema_version: Literal[1]
    currency: Literal["USD"]
    fx: dict[str, dict[str, Any]]
    accelerators: dict[str, ChipPrices]
    systems: dict[str, dict[str, Any]] = Field(default_factory=dict)
    gaps: dict[str, Any] = Field(default_factory=dict)


@lru_cache(maxsize=4)
def load_prices(path: Path = PRICES_FILE) -> PricesFile:
    """Parse the prices file; a bad fact raises ``SpecError`` naming the file and the field."""
    try:
        return PricesFile.model_validate(load_yaml_file(path))
    except ValidationError as exc:
        raise SpecError(format_validation_error(str(path), exc)) from None


def planning_purchase(accel_id: str, path: Path = PRICES_FILE) -> PurchaseFact | None:
    """The purchase fact a plan is priced with (see ``QUALITY_RANK``), or None when none qualifies."""
    chip = load_prices(path).accelerators.get(accel_id)
    usable = [p for p in (chip.purchase if chip else ()) if p.quality in QUALITY_RANK and p.scope in SCOPE_RANK]
    if not usable:
        return None
    return min(usable, key=lambda p: (QUALITY_RANK[p.quality], SCOPE_RANK[p.scope], -(p.year or 0),
                                      KIND_RANK[p.kind]))


def planning_rent(accel_id: str, path: Path = PRICES_FILE) -> RentFact | None:
    """The on-demand rent a plan is priced with: best quality, then the most recent, then the lowest."""
    chip = load_prices(path).accelerators.get(accel_id)
    usable = [r for r in (chip.rent_per_chip_hour if chip else ())
              if r.quality in QUALITY_RANK and r.pricing == "on_demand"]
    if not usable:
        return None
    newest = max((r.as_of or "")[:7] for r in usable)
    return min(usable, key=lambda r: (QUALITY_RANK[r.quality], (r.as_of or "")[:7] != newest, r.usd))


@dataclass(frozen=True, slots=True)
class ChipCost:
    """What one chip-hour of hardware costs in a plan, and from which price (a short label and its source)."""

    usd_per_chip_hour: float | None  # None: no price known, costs count electricity only
    basis: str
    source: str | None = None

    @property
    def is_known(self) -> bool:
        return self.usd_per_chip_hour is not None


def amortised_usd_per_chip_hour(price_usd: float, lifetime_years: float, utilisation: float) -> float:
    """Purchase price spread over the busy hours of the hardware's life."""
    return price_usd / (lifetime_years * HOURS_PER_YEAR * utilisation)


def hardware_cost(accel: Accelerator, site_id: str, site_rent: float | None, lifetime_years: float,
                  utilisation: float, pricing: Pricing = "purchase", path: Path = PRICES_FILE) -> ChipCost:
    """Hardware USD per chip-hour, first found of: the site's rent, the catalog's ``price_usd`` (a user catalog
    sets it to override; bundled only where no sourced price exists), the sourced price of ``pricing``
    (the other kind when that one is missing), else unknown.

    Args:
        accel: the chip.
        site_id: the site (named in the basis when its rent is used).
        site_rent: the site's rent per chip-hour, USD, if it states one.
        lifetime_years: amortisation life of a purchase.
        utilisation: share of that life the hardware is busy.
        pricing: ``purchase`` (amortised) or ``rent`` (on demand).
        path: the prices file.
    """
    if pricing not in PRICINGS:
        raise SpecError(f"pricing must be one of {', '.join(PRICINGS)} (got {pricing!r})")
    life = f"over {lifetime_years:g} y at {utilisation:.0%} use"
    if site_rent is not None:
        return ChipCost(site_rent, f"site {site_id} rent ${site_rent:.2f}/chip-h")
    if accel.price_usd is not None:
        h = amortised_usd_per_chip_hour(accel.price_usd, lifetime_years, utilisation)
        return ChipCost(h, f"catalog price_usd ${accel.price_usd:,.0f} {life} = ${h:.2f}/chip-h")
    order = ("rent", "purchase") if pricing == "rent" else ("purchase", "rent")
    for kind in order:
        if kind == "rent" and (r := planning_rent(accel.id, path)) is not None:
            return ChipCost(r.usd, f"rent ${r.usd:.2f}/chip-h on demand ({r.provider or 'provider'}, "
                                   f"{r.quality}, {r.as_of or 'undated'})", r.source)
        if kind == "purchase" and (p := planning_purchase(accel.id, path)) is not None:
            h = amortised_usd_per_chip_hour(p.usd, lifetime_years, utilisation)
            return ChipCost(h, f"purchase ${p.usd:,.0f} ({p.kind}, {p.scope}, {p.quality}, {p.year or p.as_of}) "
                               f"{life} = ${h:.2f}/chip-h", p.source)
    return ChipCost(None, "no price known: electricity only")
