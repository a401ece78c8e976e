"""A mixed fleet: chip types and how many of each, parsed from ``"HW:N,HW:M"``.

Entry points: ``FleetPart`` and ``parse_fleet(text, catalog)``; shared by mixed-fleet training and serving.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetwise.catalog.loader import Catalog
from fleetwise.catalog.types import Accelerator, System
from fleetwise.errors import SpecError


@dataclass(frozen=True, slots=True)
class FleetPart:
    """One chip type of a mixed fleet, its system and how many chips of it there are."""

    accel: Accelerator
    system: System | None
    chips: int


def parse_fleet(text: str, catalog: Catalog) -> list[FleetPart]:
    """``"huawei_ascend_910b:512,nvidia_h20:256"`` → two fleet parts with each chip's catalog system.

    Errors name the entry that is wrong: a missing or non-positive count, an unknown id, or not exactly
    two different chip types.
    """
    parts: list[FleetPart] = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        hw, _, n = item.partition(":")
        if not n.strip().isdigit() or int(n) < 1:
            raise SpecError(f"--hardware: each entry must be HW:N with N a positive integer, e.g. nvidia_h20:256 "
                            f"(got {item!r})")
        accel = catalog.accelerator(hw.strip(), "hardware")
        parts.append(FleetPart(accel, catalog.default_system(accel.id), int(n)))
    if len(parts) != 2 or parts[0].accel.id == parts[1].accel.id:
        raise SpecError(f"--hardware: a mixed fleet is two different chip types, HW:N,HW:M (got {text!r})")
    return parts
