"""Benchmarks and the GPU reference run: scripts run as files (python benchmarks/NAME.py)."""
