"""Storage backend tests."""
