"""The embedded demo target: a small service modelled on the playbooks, checked by ``make demo``.

``opsgate-demo serve`` runs it (Flask on werkzeug's threaded server, SQLAlchemy Core on SQLite
or PostgreSQL, background workers and ``/metrics``); ``opsgate-demo gate`` starts it (and a
Prometheus over backfilled history when one is installed), runs the catalog against it with
``fixtures/environments/demo.yaml`` and exits with the gate's status. ``--fault NAME`` injects
a fault that turns exactly its related checks red (see :mod:`opsgate.demo.faults`).
"""
