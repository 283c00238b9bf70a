"""Training loops, checkpoints and resume."""
