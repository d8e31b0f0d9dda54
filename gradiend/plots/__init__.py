"""Matplotlib figures: training convergence, encoder distributions, probability shifts."""
