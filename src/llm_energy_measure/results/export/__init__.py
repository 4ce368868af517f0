"""results.export."""
