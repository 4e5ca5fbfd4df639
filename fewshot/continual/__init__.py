"""Continual and multi-task learning: scenarios, strategies and metrics (issue #17)."""
