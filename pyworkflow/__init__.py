"""pyworkflow: durable, event-sourced workflows for Python."""
__version__ = "0.1.10"
