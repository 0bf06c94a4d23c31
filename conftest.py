"""Root conftest for in-repo runs. The engine is the installed ``opsgate`` pytest plugin
(entry point ``pytest11``); checks live in ``checks/``, the suite's own tests in ``tests/``."""

collect_ignore = ["benchmarks", "reports"]
