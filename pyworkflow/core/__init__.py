"""pyworkflow.core."""
