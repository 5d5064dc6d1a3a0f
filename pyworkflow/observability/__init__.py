"""pyworkflow.observability."""
