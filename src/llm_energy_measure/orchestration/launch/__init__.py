"""orchestration.launch."""
