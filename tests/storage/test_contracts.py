"""The SQLite document repository's own checks (the byte and state seams have their
contract suites: test_chunk_store.py, test_state_store.py, test_blob_store.py)."""

from __future__ import annotations

from pathlib import Path

from backend.storage.sqlite_docs import DocumentRecord, SqliteDocumentRepository


def test_document_repository(tmp_path: Path) -> None:
    repo = SqliteDocumentRepository(tmp_path / "db.sqlite3")
    rec = DocumentRecord(id=0, owner="alice", title="t", filename="t.pdf", file_size=5, sha256="a" * 64,
                         created_at="2026-01-01T00:00:00Z", session_id="s1", security={"verdict": "clean"})
    first = repo.insert(rec)
    again = repo.insert(DocumentRecord(**{**rec.__dict__, "id": 0}))
    assert first.id == again.id  # one document per session, however often completion runs
    assert repo.get("alice", first.id) == first
    assert repo.get("bob", first.id) is None
    assert repo.find_by_sha("alice", "a" * 64) == first and repo.find_by_sha("bob", "a" * 64) is None
    assert repo.count("alice") == 1 and [d.id for d in repo.list("alice")] == [first.id]
    assert repo.delete("bob", first.id) is None
    assert repo.delete("alice", first.id) == first and not repo.sha_in_use("a" * 64)
    repo.close()
