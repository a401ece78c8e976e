"""Build the network tables shipped in ``fleetwise/place/data`` from the project's reference data folder.

Run once by hand (``python scripts/build_place_data.py /work/shared/data/network``); the package never reads the
reference folder. Regions and energy rows are copied as they are; the skyplane grids are reduced to one row per
region pair (GCP zones folded into regions, PREMIUM tier only, median over repeated pairs).
"""

from __future__ import annotations

import csv
import shutil
import statistics
import sys
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "fleetwise" / "place" / "data"
COPIED = ("regions.csv", "region_energy.csv", "azure_rtt_p50_2024-04.csv",
          "LICENSE-azure-docs-CC-BY-4.0.txt", "LICENSE-skyplane-Apache-2.0.txt")


def region_key(skyplane_key: str) -> str:
    """``gcp:europe-west6-a`` -> ``gcp:europe-west6``; AWS/Azure keys are already region keys."""
    provider, _, name = skyplane_key.partition(":")
    if provider == "gcp" and name[-2:-1] == "-":
        name = name[:-2]
    return f"{provider}:{name}"


def _reduce(rows: list[dict[str, str]], value: str) -> dict[tuple[str, str], list[float]]:
    pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if r.get("src_tier", "PREMIUM") != "PREMIUM" or r.get("dst_tier", "PREMIUM") != "PREMIUM":
            continue
        a, b = region_key(r["src_region"]), region_key(r["dst_region"])
        if a != b:
            pairs[(a, b)].append(float(r[value]))
    return pairs


def main(src: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copyfile(src / name, OUT / name)
    for infile, value, outfile, column in (
            ("skyplane_rtt_grid_2022.csv", "avg_rtt_ms", "skyplane_rtt_pairs_2022.csv", "rtt_ms"),
            ("skyplane_throughput_grid_2022.csv", "throughput_received_gbit_s", "skyplane_throughput_pairs_2022.csv",
             "gbit_per_s")):
        with open(src / infile, newline="") as f:
            pairs = _reduce(list(csv.DictReader(f)), value)
        with open(OUT / outfile, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["src_region", "dst_region", column, "samples"])
            for (a, b), v in sorted(pairs.items()):
                w.writerow([a, b, f"{statistics.median(v):.3f}", len(v)])
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/network"))
