"""Power, energy, cost and carbon: chip power by phase with DVFS and caps, node and site overheads.

Modules: ``power`` (per-chip model), ``facility`` (host, network, sites), ``training`` (training step energy,
column-wise), ``serving`` (phase-mix energy for the serving planner), ``optimize`` (power settings search).
"""
