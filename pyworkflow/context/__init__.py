"""pyworkflow.context."""
