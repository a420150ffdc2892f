"""Grids, seeds, executors and the results store."""
