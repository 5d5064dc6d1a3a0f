"""pyworkflow.testing."""
