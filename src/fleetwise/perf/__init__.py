"""Pure, column-wise cost models: FLOPs, efficiency, memory, training step time."""
