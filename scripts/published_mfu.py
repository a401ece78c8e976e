"""Write ``perf/data/published_mfu.yaml``: the best MFU any bundled published training run reached on each chip.

A prediction above it is not impossible, but it claims more than anyone has published on that chip, so the
output flags it. Source of every number: the validation case (file and id) it comes from. MFU is the
published ``mfu``, else ``tflops_per_chip`` (model-FLOPs convention) over the chip's peak at the run's precision.

Run: .venv/bin/python scripts/published_mfu.py
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fleetwise.catalog import load_catalog
from fleetwise.errors import FleetwiseError
from fleetwise.validate.cases import load_cases
from fleetwise.validate.specs import bundled_case_files

OUT = Path(__file__).resolve().parents[1] / "src" / "fleetwise" / "perf" / "data" / "published_mfu.yaml"


def main() -> None:
    catalog = load_catalog()
    best: dict[str, dict[str, object]] = {}
    for f in bundled_case_files():
        for c in load_cases(f)[0]:
            if c.kind != "training":
                continue
            try:
                peak = catalog.accelerator(c.hardware).peak_flops(c.precision or "bf16")
            except FleetwiseError:
                continue
            m = c.measured
            if "mfu" in m:
                mfu = float(m["mfu"])
            elif "tflops_per_chip" in m and (c.flops_convention or "model") == "model":
                mfu = float(m["tflops_per_chip"]) * 1e12 / peak
            else:
                continue
            if mfu > float(best.get(c.hardware, {}).get("mfu", 0.0)):  # type: ignore[arg-type]
                best[c.hardware] = {"mfu": round(mfu, 4), "case": c.id, "file": f.name}
    header = ("# Best MFU reached by a bundled published training run on each chip (scripts/published_mfu.py).\n"
              "# A prediction above it is flagged: more than anyone has published on that chip. Do not edit.\n")
    OUT.write_text(header + yaml.safe_dump({"chips": dict(sorted(best.items()))}, sort_keys=False))
    print(f"wrote {OUT}: {len(best)} chips")


if __name__ == "__main__":
    main()
