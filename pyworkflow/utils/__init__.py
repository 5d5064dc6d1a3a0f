"""pyworkflow.utils."""
