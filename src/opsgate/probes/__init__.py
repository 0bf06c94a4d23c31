"""Probes: one module per kind of target. A probe measures and never judges.

Each probe takes its check's request, a client or engine made once per target, and a
``Deadline``; it returns an ``Observation`` or raises a ``ProbeError``. Driver exceptions are
mapped to opsgate's own (``errors.py``) with ``raise ... from``. No probe imports pytest.
"""
