"""Placement MILP at scale: 100 sites x 50 user regions x 10 plan kinds, solved to <= 1 % gap.

Prints the solve time and HiGHS's final relative gap, with two baselines run in the same process: the LP
relaxation (integrality dropped: its bound certifies the gap) and the per-(demand, site, plan) routing form
(``nested=False``), which the nested prefix form replaces.
Run: ``nice python benchmarks/bench_place.py`` (target: <= 10 s on 2 cores).
"""

from __future__ import annotations

import os
import time

import numpy as np

from fleetwise.place.problem import random_problem
from fleetwise.place.solve import SolverError, solve


def main(seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    for seed in seeds:
        p = random_problem(np.random.default_rng(seed), sites=100, users=50, plans=10)
        t0 = time.perf_counter()
        try:
            pl = solve(p, "cost", gap=0.01, time_limit_s=10.0)
        except SolverError as exc:
            print(f"seed {seed}: no placement within 10 s ({exc}); load average {os.getloadavg()[0]:.1f}")
            continue
        t_milp = time.perf_counter() - t0
        routes = int(p.feasible_triples().sum())
        t0 = time.perf_counter()
        lp = solve(p, "cost", relax=True)
        t_lp = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            flat = solve(p, "cost", gap=0.01, time_limit_s=30.0, nested=False)
            flat_txt = f"{time.perf_counter() - t0:.2f} s (gap {flat.gap:.3%})"
        except SolverError:
            flat_txt = "no solution in 30 s"
        ratio = (time.perf_counter() - t0) / max(t_milp, 1e-9)
        print(f"seed {seed}: 100 sites x 50 regions x 10 plans ({routes:,} SLO-feasible routes): "
              f"solved in {t_milp:.2f} s, gap {pl.gap:.3%} (target <= 1 % in <= 10 s); "
              f"LP relaxation {t_lp:.2f} s (MILP/LP time ratio {t_milp / max(t_lp, 1e-9):.1f}); "
              f"cost ${pl.objective_value:,.0f}/h, {pl.objective_value / lp.objective_value - 1:.3%} above the LP "
              f"bound; served {pl.totals()['served_share']:.1%}; per-plan routing form {flat_txt}, "
              f"{ratio:.1f}x the nested form's time; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
