"""Serving workloads: request traces (Azure LLM 2023, Mooncake) and synthetic arrival processes."""
