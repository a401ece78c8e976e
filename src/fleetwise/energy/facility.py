"""Node and facility: host and network power per node, site PUE, carbon intensity, electricity and rent prices.

Entry points: ``load_sites(path)`` → ``SiteFile``; ``site(id)``; ``node_power(system, accel, chip)`` →
``NodePower``; ``hardware_usd_per_chip_hour(accel)``. Facility energy = PUE · (chips + host + network)
(research/energy-network-placement.md §4.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetwise.catalog.loader import data_layers, format_validation_error, load_data_file
from fleetwise.catalog.types import Accelerator, System
from fleetwise.energy.power import ChipPower
from fleetwise.errors import SpecError
from fleetwise.units import HOUR

SITES_FILE = Path(__file__).parent / "data" / "sites.yaml"
HOURS_PER_YEAR = 8760.0


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Site(_Strict):
    """A datacentre site: PUE, grid carbon intensity, electricity price, optional accelerator rent."""

    pue: float = Field(ge=1.0, le=3.0)
    gco2_per_kwh: float = Field(ge=0.0, le=2000.0)
    usd_per_kwh: float = Field(ge=0.0, le=10.0)
    rent_usd_per_chip_hour: float | None = Field(default=None, ge=0.0, le=1000.0)
    source: str | None = None


class NodeDefaults(_Strict):
    host_load_frac: float = Field(ge=0.0, le=1.0)
    host_w_per_chip: float = Field(ge=0.0, le=5000.0)
    nic_w: float = Field(ge=0.0, le=1000.0)
    switch_w_per_port: float = Field(ge=0.0, le=1000.0)
    switch_ports_per_nic: float = Field(ge=0.0, le=16.0)
    lifetime_years: float = Field(gt=0.0, le=30.0)
    utilisation: float = Field(gt=0.0, le=1.0)


class SiteFile(_Strict):
    default_site: str
    sites: dict[str, Site]
    node: NodeDefaults
    path: str = ""

    def site(self, site_id: str | None) -> tuple[str, Site]:
        """The named site (or the file's default); an unknown id lists the known ones."""
        sid = site_id or self.default_site
        if sid not in self.sites:
            raise SpecError(f"{self.path}: unknown site {sid!r} (field: site; known: {', '.join(sorted(self.sites))})")
        return sid, self.sites[sid]


def load_sites(path: Path = SITES_FILE) -> SiteFile:
    """Parse a sites file (user catalog folders' sites.yaml layered over it); a bad value (negative PUE, unknown
    default) raises one ``SpecError``."""
    return _load_sites(Path(path), tuple(data_layers()))


@lru_cache(maxsize=8)
def _load_sites(path: Path, layers: tuple[Path, ...]) -> SiteFile:
    data = load_data_file(Path(path))
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with default_site, sites and node")
    try:
        sf = SiteFile.model_validate({**data, "path": str(path)})
    except ValidationError as exc:
        raise SpecError(format_validation_error(str(path), exc)) from None
    if sf.default_site not in sf.sites:
        raise SpecError(f"{path}: default_site: {sf.default_site!r} is not one of the sites "
                        f"({', '.join(sorted(sf.sites))})")
    return sf


@dataclass(frozen=True, slots=True)
class NodePower:
    """Power besides the accelerators, per node (W), held for the whole step (hosts and NICs do not idle)."""

    chips_per_node: int
    host_w: float
    network_w: float  # NICs and their switch ports
    derived: tuple[str, ...]


def node_power(system: System, accel: Accelerator, chip: ChipPower, defaults: NodeDefaults) -> NodePower:
    """Host (CPUs, DRAM, fans) and network power of one node of ``system``."""
    n = system.chips_per_node
    nics = system.nics_per_node if system.nics_per_node is not None else n
    network = nics * (defaults.nic_w + defaults.switch_ports_per_nic * defaults.switch_w_per_port)
    derived = ["network_w (NIC and switch-port estimates)"]
    if system.node_power_w is not None:
        rest = max(system.node_power_w - n * chip.max_w - nics * defaults.nic_w, 0.0)
        host = defaults.host_load_frac * rest
        derived.append(f"host_w ({defaults.host_load_frac:.0%} of node_power_w minus chips and NICs)")
    else:
        host = defaults.host_w_per_chip * n
        derived.append(f"host_w ({defaults.host_w_per_chip:.0f} W per chip: the system has no node_power_w)")
    del accel
    return NodePower(chips_per_node=n, host_w=float(host), network_w=float(network), derived=tuple(derived))


def hardware_usd_per_chip_hour(accel: Accelerator, site: Site, defaults: NodeDefaults) -> float | None:
    """Hardware USD per chip-hour by ``fleetwise.energy.prices.hardware_cost`` (site rent, catalog price,
    sourced price); None if unknown."""
    from fleetwise.energy.prices import hardware_cost

    return hardware_cost(accel, "", site.rent_usd_per_chip_hour, defaults.lifetime_years,
                         defaults.utilisation).usd_per_chip_hour


def kwh(energy_j: float) -> float:
    return energy_j / (1000.0 * HOUR)
