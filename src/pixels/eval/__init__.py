"""Measuring edits: pixel metrics against the source and exemplars, and model-based metrics."""
