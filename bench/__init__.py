"""tidelake's benchmarks: each runs our job and a baseline side by side, in one run, on one broker.

Machines are noisy, so the ratio between the two is the figure that counts. `make bench` runs them
all; `python -m bench replay sink` runs some. Results are printed and appended to docs/benchmarks.md.
"""
