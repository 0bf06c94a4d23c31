"""Shared fixtures of the suite's own tests: real PostgreSQL, real Prometheus, the demo target."""

pytest_plugins = [
    "pytester",
    "tests.support.postgres",
    "tests.support.prometheus",
    "tests.support.pg_cluster",
    "tests.support.demo",
    "tests.support.http",
]
