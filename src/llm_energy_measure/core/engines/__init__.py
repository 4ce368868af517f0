"""core.engines."""
