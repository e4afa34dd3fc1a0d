"""Tiny randomly initialised models of every family, for tests and examples that need no weights."""
