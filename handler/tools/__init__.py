"""Build and measurement tools: the model bake, random checkpoints, benchmark, precision parity."""
