"""Group constants fitted on published end-to-end runs (never per case), and the chip families they apply to.

Entry points: ``load_calibration()`` returns ``Calibration``; ``Calibration.constants(chip_id)``.
The file ``perf/data/calibration.yaml`` is written by ``fleetwise.validate.calibrate`` and records what
each constant was fitted on, its in-sample error and its leave-one-source-out error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fleetwise.catalog.loader import load_yaml_file
from fleetwise.errors import SpecError

DATA_FILE = Path(__file__).parent / "data" / "calibration.yaml"

# Chip families share software stacks and micro-architecture; constants are fitted per family.
FAMILIES: dict[str, tuple[str, ...]] = {
    "nvidia_volta_ampere": ("nvidia_v100_sxm2_32gb", "nvidia_a100_40gb_sxm", "nvidia_a100_80gb_sxm",
                            "nvidia_a800_80gb_sxm"),
    "nvidia_hopper": ("nvidia_h100_sxm", "nvidia_h100_pcie", "nvidia_h800_sxm", "nvidia_h20", "nvidia_h200_sxm"),
    "nvidia_blackwell": ("nvidia_b200_hgx", "nvidia_gb200_per_gpu", "nvidia_gb300_per_gpu"),
    "huawei_ascend": ("huawei_ascend_910", "huawei_ascend_910b", "huawei_ascend_910b1", "huawei_ascend_910b2",
                      "huawei_ascend_910b3", "huawei_ascend_910b4", "huawei_ascend_910c"),
    "google_tpu": ("google_tpu_v3", "google_tpu_v4", "google_tpu_v5e", "google_tpu_v5p", "google_tpu_v6e"),
    "amd_instinct": ("amd_mi250x", "amd_mi300x", "amd_mi325x"),
}


def family_of(chip_id: str) -> str:
    for fam, chips in FAMILIES.items():
        if chip_id in chips:
            return fam
    return "global"


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
    data: Any = load_yaml_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
        raise SpecError(f"{path}: expected a 'groups' mapping")
    groups = {}
    for name, raw in data["groups"].items():
        scale = float(raw.get("compute_scale", 1.0))
        if not 0.2 <= scale <= 5.0:
            raise SpecError(f"{path}: groups.{name}.compute_scale must be in [0.2, 5] (got {scale})")
        groups[name] = GroupConstants(scale, name, tuple(raw.get("fitted_on", ())))
    return Calibration(groups)
