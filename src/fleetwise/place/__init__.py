"""Placement across cloud regions and edge sites: where to serve and train, given the real network.

``spec`` (YAML scenarios), ``network`` (RTT and bandwidth data and models), ``problem`` (the MILP's arrays),
``solve`` (HiGHS, imported lazily), ``edge`` (cascade and speculative decoding across edge and cloud),
``training`` (which sites train; synchronous DP vs DiLoCo), ``plot`` (map picture, matplotlib lazily).
"""
