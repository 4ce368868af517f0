"""orchestration.study."""
