"""pyworkflow.serialization."""
