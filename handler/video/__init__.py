"""Video moderation: sampled frames, verdicts over time, inputs and limits."""
