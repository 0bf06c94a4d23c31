"""opsgate: runbook steps as pytest checks against live systems, ending in a gate verdict."""

__version__ = "0.1.0"
