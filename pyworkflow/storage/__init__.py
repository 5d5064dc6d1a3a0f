"""Storage backends: the protocol, records and implementations."""
