"""Benchmarks of searchtrail against the ceiling of its own stack; ``python -m bench``."""
