"""results.aggregation."""
