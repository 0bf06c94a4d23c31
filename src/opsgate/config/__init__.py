"""Environment files: load, expand ``${VAR}`` secrets, validate, fail before any check runs."""

from opsgate.config.loader import load_environment, resolve_environment_path
from opsgate.config.schema import Check, Environment

__all__ = ["Check", "Environment", "load_environment", "resolve_environment_path"]
