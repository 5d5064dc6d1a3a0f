"""pyworkflow.runtime."""
