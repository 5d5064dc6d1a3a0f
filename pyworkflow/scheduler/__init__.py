"""pyworkflow.scheduler."""
