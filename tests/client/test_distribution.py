"""The client is a distribution of its own (clients/python): aiohttp and rich, nothing of
the server; the server's distribution no longer carries either."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pdf_upload_client
from tests.e2e.conftest import REPO

CLIENT = REPO / "clients" / "python"
ALLOWED = {"aiohttp", "rich"}


def names(requirements: list[str]) -> set[str]:
    """Distribution names of the requirements that are not behind an extra."""
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements if "extra ==" not in r}


def test_client_metadata_depends_on_aiohttp_and_rich_only() -> None:
    declared = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert names(declared["dependencies"]) == ALLOWED
    assert declared["scripts"] == {"pdf-upload": "pdf_upload_client.cli:main"}
    assert names(metadata.requires("pdf-upload-client") or []) == ALLOWED  # what is installed says the same
    assert Path(pdf_upload_client.__file__).resolve().is_relative_to(CLIENT)


def test_server_distribution_no_longer_carries_the_client() -> None:
    server = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not names(server["dependencies"]) & ALLOWED
    assert "pdf-upload" not in server.get("scripts", {})
    assert not names(metadata.requires("pdf-upload-server") or []) & ALLOWED


def test_client_imports_nothing_else() -> None:
    """Standard library, aiohttp, rich and itself: never the server's packages."""
    seen: set[str] = set()
    for path in (CLIENT / "pdf_upload_client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                seen.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                seen.add(node.module.split(".")[0])
    assert seen - set(sys.stdlib_module_names) - {"__future__"} == ALLOWED | {"pdf_upload_client"}
