"""Group constants fitted on published end-to-end runs (never per case), and the chip families they apply to.

Entry points: ``load_calibration()`` returns ``Calibration``; ``Calibration.constants(chip_id)``.
The file ``perf/data/calibration.yaml`` is written by ``fleetwise.validate.calibrate`` and records what
each constant was fitted on, its in-sample error and its leave-one-source-out error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from fleetwise.catalog.loader import data_layers, load_data_file
from fleetwise.errors import SpecError

DATA_FILE = Path(__file__).parent / "data" / "calibration.yaml"

FAMILIES_FILE = Path(__file__).parent / "data" / "families.yaml"


@lru_cache(maxsize=8)
def _families(layers: tuple[Path, ...]) -> dict[str, str]:
    data: Any = load_data_file(FAMILIES_FILE)
    chips = data.get("chips") if isinstance(data, dict) else None
    if not isinstance(chips, dict) or not all(isinstance(v, str) and v for v in chips.values()):
        raise SpecError(f"{FAMILIES_FILE}: expected 'chips', a mapping of chip id -> family name")
    return {str(k): v for k, v in chips.items()}


def families() -> dict[str, str]:
    """Chip id -> family (``perf/data/families.yaml``, with user catalog folders layered over it)."""
    return _families(tuple(data_layers()))


def family_of(chip_id: str) -> str:
    """The chip's family, whose fitted constants it uses; ``global`` for a chip in none."""
    return families().get(chip_id, "global")


@dataclass(frozen=True, slots=True)
class GroupConstants:
    """Constants of one chip family. ``compute_scale`` multiplies kernel time (1.0 = micro-benchmark speed)."""

    compute_scale: float = 1.0
    family: str = "global"
    fitted_on: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Calibration:
    groups: dict[str, GroupConstants]

    def constants(self, chip_id: str) -> GroupConstants:
        fam = family_of(chip_id)
        g = self.groups.get(fam) or self.groups.get("global") or GroupConstants()
        return replace(g, family=fam)


def load_calibration(path: Path = DATA_FILE) -> Calibration:
    """Read fitted group constants; a missing file means uncalibrated (every constant 1.0)."""
    if not path.exists():
        return Calibration({})
    data: Any = load_data_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
        raise SpecError(f"{path}: expected a 'groups' mapping")
    groups = {}
    for name, raw in data["groups"].items():
        scale = float(raw.get("compute_scale", 1.0))
        if not 0.2 <= scale <= 5.0:
            raise SpecError(f"{path}: groups.{name}.compute_scale must be in [0.2, 5] (got {scale})")
        groups[name] = GroupConstants(scale, name, tuple(raw.get("fitted_on", ())))
    return Calibration(groups)
