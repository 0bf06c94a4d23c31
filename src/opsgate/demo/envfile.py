"""Render ``fixtures/environments/demo.yaml`` for one run: the actual URLs and database.

The file names the demo's default addresses; a run may use other ports or a PostgreSQL
database, so the gate writes a copy with those into its run folder. Only a database password
becomes a variable (``${DEMO_DB_PASSWORD}``, handed to the child's environment): everything
expanded from a variable is redacted from the run's outputs, which a whole URL must not be.
With PostgreSQL the checks of the ``postgres`` checklist join the run's checklists.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import yaml
from sqlalchemy.engine import make_url

from opsgate.demo.database import backend

API_URL = "http://127.0.0.1:18080"
PROMETHEUS_URL = "http://127.0.0.1:19090"
DATABASE_URL = "sqlite:///.opsgate-demo/demo.sqlite"
PASSWORD_VARIABLE = "DEMO_DB_PASSWORD"
POSTGRES_CHECKLIST = "postgres"
GATE_CHECKLISTS = ("demo", "demo-core")


class EnvFileError(ValueError):
    """The demo environment file is missing or does not name the demo's addresses."""


def render(source: Path, destination: Path, *, api_url: str, prometheus_url: str,
           db_url: str) -> dict[str, str]:
    """Write the run's copy of ``source``; the environment variables the run needs."""
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvFileError(f"cannot read {source}: {exc.strerror}") from exc
    missing = [url for url in (API_URL, PROMETHEUS_URL, DATABASE_URL) if url not in text]
    if missing:
        raise EnvFileError(f"{source} does not name {', '.join(missing)}; the gate replaces "
                           "those with the run's addresses")
    database, variables = _database(db_url)
    text = (text.replace(API_URL, api_url).replace(PROMETHEUS_URL, prometheus_url)
            .replace(DATABASE_URL, database))
    if backend(db_url) == "postgresql":
        text = _with_postgres_checks(text)
    destination.write_text(text, encoding="utf-8")
    return variables


def _database(db_url: str) -> tuple[str, dict[str, str]]:
    """The URL to write, with its password (if any) as a variable."""
    url = make_url(db_url)
    if url.password is None:
        return url.render_as_string(hide_password=False), {}
    marker = "OPSGATEDEMOPASSWORD"
    written = url.set(password=marker).render_as_string(hide_password=False)
    return (written.replace(marker, "${" + PASSWORD_VARIABLE + "}"),
            {PASSWORD_VARIABLE: quote(str(url.password), safe="")})


def _with_postgres_checks(text: str) -> str:
    """The checks of the ``postgres`` checklist also in the gate's checklists."""
    document = yaml.safe_load(text)
    for check in document.get("checks", []):
        names = check.get("checklists", [])
        if POSTGRES_CHECKLIST in names:
            check["checklists"] = [*names, *(n for n in GATE_CHECKLISTS if n not in names)]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
