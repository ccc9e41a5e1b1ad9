"""Encrypted PDFs in the import: one that opens with an empty password is indexed
(PDFium reads it, or its copy that pikepdf decrypted); one that needs a password ends
``no_text`` with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.importer.extract import PasswordRequired, extract_pages
from backend.settings import Settings, temp_settings
from tests.conftest import Api
from tests.textpdf import encrypt_pdf, make_text_pdf, page_word


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A password-protected file is only flagged here, so that it reaches the import."""
    return temp_settings(tmp_path / "srv", progress_interval_seconds=0,
                         security_reject_kinds="javascript,launch,xfa,embedded_executable")


def _encrypted(tmp_path: Path, name: str, seed: int, *, owner: str, user: str) -> Path:
    make_text_pdf(tmp_path / f"{name}-plain.pdf", 2, seed=seed)
    encrypt_pdf(tmp_path / f"{name}-plain.pdf", tmp_path / f"{name}.pdf", owner=owner, user=user)
    return tmp_path / f"{name}.pdf"


def test_extract_reads_files_that_open_with_an_empty_password(tmp_path: Path) -> None:
    user_empty = _encrypted(tmp_path, "u", 21, owner="secret", user="")
    owner_empty = _encrypted(tmp_path, "o", 22, owner="", user="secret")  # PDFium alone: "Incorrect password"
    assert page_word(21, 1, 0) in extract_pages(user_empty)[1]
    pages = extract_pages(owner_empty)
    assert len(pages) == 2 and page_word(22, 0, 3) in pages[0] and page_word(22, 1, 0) in pages[1]
    assert extract_pages(owner_empty, 1) == pages[:1]
    with pytest.raises(PasswordRequired, match="needs a password"):
        extract_pages(_encrypted(tmp_path, "locked", 23, owner="secret", user="also-secret"))


async def _doc(api: Api, doc_id: int) -> dict[str, Any]:
    r = await api.http.get(f"/api/documents/{doc_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _search(http: httpx.AsyncClient, q: str) -> list[dict[str, Any]]:
    r = await http.get("/api/documents/search", params={"q": q})
    assert r.status_code == 200, r.text
    return list(r.json()["hits"])


async def test_empty_password_files_are_indexed_and_locked_ones_say_why(api: Api, tmp_path: Path) -> None:
    ids = {}
    for name, seed, owner, user in (("user_empty", 31, "secret", ""), ("owner_empty", 32, "", "secret"),
                                    ("locked", 33, "secret", "also-secret")):
        body = await api.upload(_encrypted(tmp_path, name, seed, owner=owner, user=user).read_bytes(),
                                filename=f"{name}.pdf")
        assert "encrypted" in {f["kind"] for f in body["document"]["security"]["findings"]}, body
        ids[name] = body["document"]["id"]
    await api.svc.importer.drain(timeout=120)

    for name, seed in (("user_empty", 31), ("owner_empty", 32)):
        doc = await _doc(api, ids[name])
        assert (doc["index_status"], doc["index_error"]) == ("indexed", None), doc
        hits = await _search(api.http, page_word(seed, 1, 2))
        assert hits and (hits[0]["document_id"], hits[0]["page"]) == (ids[name], 2), hits

    locked = await _doc(api, ids["locked"])
    assert locked["index_status"] == "no_text" and "needs a password" in locked["index_error"], locked
    failures = (await api.http.get("/api/documents/import-failures")).json()
    assert failures == []  # not a failure to retry: nothing will read it without the password
