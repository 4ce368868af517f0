"""results.analysis."""
