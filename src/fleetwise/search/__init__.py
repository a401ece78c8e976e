"""Candidate spaces, vectorised evaluation, Pareto fronts."""
