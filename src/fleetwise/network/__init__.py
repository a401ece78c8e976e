"""Network tiers and collective-communication costs."""

from fleetwise.network.collectives import Network, TierModel, build_network

__all__ = ["Network", "TierModel", "build_network"]
