"""pyworkflow.primitives."""
