"""The run's folder and its files, written so that none is ever half-written or overwritten.

Each run gets a new folder ``<report dir>/<run id>-<envs>-<checklist>/``. pytest-html and
JUnit write to hidden temporary names in it; ``finish()`` renames them to ``report.html`` and
``junit.xml`` once they are complete (a rename is atomic), so a killed run leaves no file that
looks finished. Paths given explicitly with ``--html`` / ``--junitxml`` are left as given.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsgate.run import RunInfo


class RunFiles:
    """Where one run writes, and the renames that publish its files."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.renames: list[tuple[Path, Path]] = []

    @classmethod
    def create(cls, config: pytest.Config, info: RunInfo) -> RunFiles:
        base = Path(config.getoption("report_dir"))
        if not base.is_absolute():
            base = config.rootpath / base
        directory = base / info.directory_name()
        directory.mkdir(parents=True, exist_ok=False)
        files = cls(directory)
        if not getattr(config.option, "htmlpath", None):
            config.option.htmlpath = str(files._staged("report.html"))
            config.option.self_contained_html = True
        if not getattr(config.option, "xmlpath", None):
            config.option.xmlpath = str(files._staged("junit.xml"))
        return files

    def _staged(self, name: str) -> Path:
        final = self.directory / name
        temporary = self.directory / f".{name}.partial"
        self.renames.append((temporary, final))
        return temporary

    @property
    def report(self) -> Path:
        return self.directory / "report.html"

    def finish(self, config: pytest.Config | None = None) -> None:
        """Publish every staged file that was written completely.

        pytest-html and JUnit print the path they wrote; they are told the final one.
        """
        for temporary, final in self.renames:
            if temporary.exists():
                with open(temporary, "rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(temporary, final)
                if config is not None:
                    _repoint(config, temporary, final)
        self.renames = []


def _repoint(config: pytest.Config, temporary: Path, final: Path) -> None:
    """Make the reporting plugins name ``final`` in the lines they print."""
    for plugin in config.pluginmanager.get_plugins():
        for attribute in ("_report_path", "logfile"):
            value = getattr(plugin, attribute, None)
            if value is not None and Path(value) == temporary:
                setattr(plugin, attribute, type(value)(final) if isinstance(value, Path)
                        else str(final))
