"""pyworkflow.engine."""
