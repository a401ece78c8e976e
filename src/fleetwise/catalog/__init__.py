"""Catalog of accelerators, systems, fabrics and model architectures."""

from fleetwise.catalog.loader import Catalog, load_catalog
from fleetwise.catalog.types import (
    Accelerator,
    Attention,
    Fabric,
    ModelArch,
    Moe,
    PeakTflops,
    Precision,
    System,
    Tier,
)

__all__ = [
    "Accelerator",
    "Attention",
    "Catalog",
    "Fabric",
    "ModelArch",
    "Moe",
    "PeakTflops",
    "Precision",
    "System",
    "Tier",
    "load_catalog",
]
