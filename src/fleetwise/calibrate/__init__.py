"""Calibration: micro-benchmarks on a device, and the fits that turn them into data files a user folder layers.

``fit`` holds the fitter (GEMM, attention, HBM, collectives), ``shipped`` assembles the bundled
``perf/data/efficiency.yaml`` with it, ``bench`` measures a device, ``device`` fits one chip's profile into a
user catalog folder, and ``compare`` runs the validation cases with and without that folder.
"""
