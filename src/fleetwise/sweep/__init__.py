"""Sweeps: grids of scenarios (models x hardware or systems x chip counts x workloads x objectives), the best
plan of each, results to Parquet with a content hash per scenario so a killed sweep resumes, a summary table
and plots. Backends: a local process pool (default) or Ray (``fleetwise[ray]``); the same rows either way.
Entry points: ``load_grid``, ``parse_grid``, ``run_sweep``, ``summary``, ``plot``.
"""

from __future__ import annotations

from fleetwise.sweep.grid import MAX_WITHOUT_YES, Grid, load_grid, parse_grid, scenario_id
from fleetwise.sweep.report import match_curve, plot, summary
from fleetwise.sweep.run import BACKENDS, SweepResult, read_rows, run_sweep

__all__ = ["BACKENDS", "MAX_WITHOUT_YES", "Grid", "SweepResult", "load_grid", "match_curve", "parse_grid", "plot",
           "read_rows", "run_sweep", "scenario_id", "summary"]
