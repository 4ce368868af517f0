"""results.report."""
