"""Fit fleetwise's per-chip efficiency parameters from micro-benchmarks only.

Reads measured-efficiency.yaml and hardware.yaml from a reference folder (default
../shared/reference next to the repo root), fits GEMM, attention, HBM, collective and all-to-all
parameters by least squares in log space (the fitter is ``fleetwise.calibrate``, the same one
``fleetwise calibrate fit`` runs on a device profile), prints residual tables, and writes
src/fleetwise/perf/data/efficiency.yaml. Usage: python scripts/fit_efficiency.py [REFERENCE_DIR]
"""

import datetime
import hashlib
import sys
from pathlib import Path

import yaml

from fleetwise.calibrate.shipped import shipped_table

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src/fleetwise/perf/data/efficiency.yaml"


SUPPLEMENT = REPO / "scripts/data/measured-efficiency-supplement.yaml"  # the project's own micro-benchmarks


def load(ref: Path) -> tuple[dict, dict, str]:
    files = [ref / "measured-efficiency.yaml", ref / "hardware.yaml", SUPPLEMENT]
    bench = yaml.safe_load(files[0].read_text())
    accel = {a["id"]: a for a in yaml.safe_load(files[1].read_text())["accelerators"]}
    # supplement sweeps marked use: group_scaling only shape how a ring's plateau scales with the group size
    extra = yaml.safe_load(SUPPLEMENT.read_text())["collectives"]
    bench["group_scaling"] = [e for e in extra if e.get("use") == "group_scaling"]
    bench["collectives"] = bench["collectives"] + [e for e in extra if e.get("use") != "group_scaling"]
    return bench, accel, hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


def main(ref: Path) -> None:
    bench, accel, digest = load(ref)
    text = shipped_table(bench, accel, digest, datetime.date.today(), print)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"\nwrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared/reference")
