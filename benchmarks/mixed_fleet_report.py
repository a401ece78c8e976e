"""Mixed 910B + H20 serving against single-type plans on the same chips, for a few realistic workloads.

Run: ``.venv/bin/python benchmarks/mixed_fleet_report.py [--fleet huawei_ascend_910b:512,nvidia_h20:256]``.
Every number comes from ``fleetwise.search.mixed_serving``; nothing here is tuned per workload.
"""

from __future__ import annotations

import argparse

from fleetwise.catalog import load_catalog
from fleetwise.search.fleet import parse_fleet
from fleetwise.search.mixed_serving import search_mixed_serving
from fleetwise.search.serving import ServingWorkload

WORKLOADS = {  # name: (model, input tokens, output tokens, TTFT s, TPOT s)
    "summarise 2048/256, TPOT 50 ms": ("llama3.1-70b", 2048.0, 256.0, 2.0, 0.05),
    "chat 1024/512, TTFT 1 s, TPOT 50 ms": ("llama3.1-70b", 1024.0, 512.0, 1.0, 0.05),
    "RAG 8192/256, TTFT 3 s, TPOT 50 ms": ("llama3.1-70b", 8192.0, 256.0, 3.0, 0.05),
    "summarise 2048/256, relaxed TPOT 100 ms": ("llama3.1-70b", 2048.0, 256.0, 2.0, 0.10),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fleet", default="huawei_ascend_910b:512,nvidia_h20:256")
    args = ap.parse_args()
    catalog = load_catalog()
    fleet = parse_fleet(args.fleet, catalog)
    print(f"fleet {args.fleet}; goodput = requests/s within TTFT and TPOT")
    print(f"{'workload':<42}{'mixed':>9}{'all A':>9}{'all B':>9}{'split':>9}{'gain':>8}  mixed plan")
    for name, (model, i, o, ttft, tpot) in WORKLOADS.items():
        r = search_mixed_serving(catalog.model(model), fleet, ServingWorkload(i, o, ttft, tpot))
        m = r.mixed
        plan = "none" if m is None else (f"P on {m.prefill_type} {m.pair.prefill_engines}x{m.pair.prefill.engine_chips}"
                                         f", D on {m.decode_type} {m.pair.decode_engines}x{m.pair.decode.engine_chips}"
                                         f", leftover {m.leftover[0].chips}+{m.leftover[1].chips}")
        a, b = r.same_total
        print(f"{name:<42}{r.mixed_rps:>9.1f}{a.goodput_rps:>9.1f}{b.goodput_rps:>9.1f}{r.split_fleet_rps:>9.1f}"
              f"{r.gain_over_best_single:>8.3f}  {plan}")
    print("all A / all B: the fleet's total chip count of one type; split: each type alone on its own chips; "
          "gain: mixed / better of all A, all B")


if __name__ == "__main__":
    main()
