"""Discrete-event serving simulator: replays a trace through a serving plan (see ``serving.simulate``)."""
