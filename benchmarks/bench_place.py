"""Placement MILP at scale: 100 sites x 50 user regions x 10 plan kinds, solved to <= 1 % gap.

Prints the solve time, HiGHS's final relative gap and, as the in-process baseline, the time and bound of the LP
relaxation of the same problem (integrality dropped), so the ratio says what the integer replicas cost.
Run: ``nice python benchmarks/bench_place.py`` (target: <= 10 s on 2 cores).
"""

from __future__ import annotations

import time

import numpy as np

from fleetwise.place.problem import random_problem
from fleetwise.place.solve import solve


def main(seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    for seed in seeds:
        p = random_problem(np.random.default_rng(seed), sites=100, users=50, plans=10)
        t0 = time.perf_counter()
        pl = solve(p, "cost", gap=0.01, time_limit_s=10.0)
        t_milp = time.perf_counter() - t0
        routes = int(p.feasible_triples().sum())
        t0 = time.perf_counter()
        lp = solve(p, "cost", relax=True)
        t_lp = time.perf_counter() - t0
        print(f"seed {seed}: 100 sites x 50 regions x 10 plans ({routes:,} SLO-feasible routes): "
              f"solved in {t_milp:.2f} s, gap {pl.gap:.3%} (target <= 1 % in <= 10 s); "
              f"LP relaxation {t_lp:.2f} s (MILP/LP time ratio {t_milp / max(t_lp, 1e-9):.1f}); "
              f"cost ${pl.objective_value:,.0f}/h, {pl.objective_value / lp.objective_value - 1:.3%} above the LP "
              f"bound; served {pl.totals()['served_share']:.1%}")


if __name__ == "__main__":
    main()
