"""Plausibility of a predicted MFU: the best any bundled published run reached on the chip
(``perf/data/published_mfu.yaml``, written by ``scripts/published_mfu.py`` from the validation cases).

A prediction above it is not rejected, but flagged with the published ceiling and its source, so that no
output claims more than has been published on a chip without saying so. Entry point: ``mfu_note``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fleetwise.catalog.loader import data_layers, load_data_file

DATA_FILE = Path(__file__).parent / "data" / "published_mfu.yaml"


@lru_cache(maxsize=4)
def _table(layers: tuple[Path, ...]) -> dict[str, dict[str, Any]]:
    data = load_data_file(DATA_FILE)
    chips = data.get("chips") if isinstance(data, dict) else None
    return {str(k): dict(v) for k, v in chips.items()} if isinstance(chips, dict) else {}


def mfu_note(chip_id: str, mfu: float) -> dict[str, Any] | None:
    """``None`` when ``mfu`` is within what has been published on ``chip_id`` (or nothing is), else a note
    with the best published MFU on that chip and the case it comes from."""
    best = _table(tuple(data_layers())).get(chip_id)
    if best is None or mfu <= float(best["mfu"]):
        return None
    return {"mfu_above_best_published": True, "best_published_mfu": float(best["mfu"]), "case": best["case"],
            "why": f"predicted MFU {mfu:.1%} is above the best published on {chip_id} ({float(best['mfu']):.1%}, "
                   f"{best['case']}): the kernel efficiencies come from micro-benchmarks, and no published run "
                   "has shown this much on this chip; treat it as an upper bound"}
