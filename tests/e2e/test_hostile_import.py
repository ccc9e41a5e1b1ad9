"""Imports of hostile text on a real server: ``/health`` stays quick while they run.

A page of 30,000 letters then ``.b`` (a 788-byte PDF) once held the server's GIL for
13 s in the sentence splitter; now the splitting is linear and, with the text
extraction, runs in a child process. An encrypted file whose owner password is empty
gets indexed too (PDFium alone refused it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.client import ApiClient
from tests.e2e.conftest import ServerProcess
from tests.e2e.health import HealthProbe
from tests.textpdf import encrypt_pdf, make_line_pdf, make_text_pdf, page_word

pytestmark = pytest.mark.e2e
DONE = {"indexed", "no_text", "failed"}


def hostile_files(root: Path) -> dict[str, Path]:
    """Small files whose page text is hard on a backtracking sentence pattern, and the
    encrypted file PDFium cannot open by itself."""
    texts = {
        "letters_30k": "a" * 30_000 + ".b",  # the file: 13 s of /health before
        "letters_100k": "b" * 100_000 + ".c",
        "marks_50k": "Marks " + "!" * 50_000 + "x",
        "words_then_letters": "Ordinary words first. " * 20 + "d" * 60_000 + ".e",
    }
    root.mkdir(parents=True, exist_ok=True)
    files = {name: root / f"{name}.pdf" for name in texts}
    for name, text in texts.items():
        make_line_pdf(files[name], text)
    make_text_pdf(root / "plain.pdf", 2, seed=41)
    files["owner_empty_encrypted"] = root / "owner_empty_encrypted.pdf"
    encrypt_pdf(root / "plain.pdf", files["owner_empty_encrypted"], owner="", user="secret")
    return files


async def upload(api: ApiClient, path: Path) -> int:
    data = path.read_bytes()
    s = await api.initiate(path.name, len(data))
    size, total = s["chunk_size"], s["total_chunks"]
    for i in range(total):
        reply = await api.send_chunk(s["session_id"], i, data[i * size:(i + 1) * size], size, total)
        assert reply.status == 200, reply
    reply = await api.complete(s["session_id"])
    assert reply.status == 200, reply
    return int(reply.body["document"]["id"])


async def test_health_stays_quick_while_hostile_text_is_imported(
        make_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    files = hostile_files(tmp_path / "files")
    server = make_server()
    async with ApiClient(server.base_url) as api:
        for _ in range(400):  # the document index loads in the background: measure after it
            if (await api.get("/ready")).status == 200:
                break
            await asyncio.sleep(0.05)
        started = time.monotonic()
        with HealthProbe(server.host, server.port) as probe:
            ids = {name: await upload(api, path) for name, path in files.items()}
            status: dict[str, Any] = {}
            while time.monotonic() < started + 60:
                for name, doc_id in ids.items():
                    doc = (await api.get(f"/api/documents/{doc_id}")).body
                    status[name] = (doc["index_status"], doc["index_error"])
                if all(s[0] in DONE for s in status.values()):
                    break
                await asyncio.sleep(0.1)
        took = time.monotonic() - started
        hits = (await api.get(f"/api/documents/search?q={page_word(41, 1, 2)}")).body["hits"]
    print(f"/health: {len(probe.times)} probes over {took:.1f} s, p99 {probe.p99() * 1000:.1f} ms, "
          f"max {max(probe.times) * 1000:.1f} ms; imports {status}")
    assert all(s == ("indexed", None) for s in status.values()), status
    assert hits and (hits[0]["document_id"], hits[0]["page"]) == (ids["owner_empty_encrypted"], 2), hits
    assert not probe.failures, probe.failures[:5]
    assert len(probe.times) >= 20, len(probe.times)
    assert probe.p99() <= 0.1 and max(probe.times) <= 1.0, (probe.p99(), max(probe.times), len(probe.times))
    server.assert_no_tracebacks()
