"""What the six method files lean on: tasks, metrics, checkpoints and weights, the command lines,
distribution and the speed-ups (README.md here groups them). It never imports a method file; the
speed-ups (fast.py) reuse the naive sampler's pieces."""
