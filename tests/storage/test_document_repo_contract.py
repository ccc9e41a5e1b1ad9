"""The document repository contract (``backend/storage/document_repo.py``), run against
every repository: each test gets a fresh one from every factory in ``REPOS`` (PostgreSQL:
a real server from tests/realservers, a fresh database per test)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from backend.storage.document_repo import DocumentRecord, DocumentRepository
from backend.storage.postgres.documents import PostgresDocumentRepository
from backend.storage.sqlite_docs import SqliteDocumentRepository

# name -> a repository over (a directory, the test's request); the same test gets the same data back
REPOS: dict[str, Callable[[Path, pytest.FixtureRequest], DocumentRepository]] = {
    "sqlite": lambda root, _: SqliteDocumentRepository(root / "documents.sqlite3"),
    "postgres": lambda _, req: PostgresDocumentRepository(req.getfixturevalue("postgres_url")),
}
A, B = "a" * 64, "b" * 64


@pytest.fixture(params=sorted(REPOS))
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], DocumentRepository]]:
    opened: list[DocumentRepository] = []

    def factory() -> DocumentRepository:
        opened.append(REPOS[request.param](tmp_path, request))
        return opened[-1]

    yield factory
    for repo in opened:
        repo.close()


def doc(owner: str = "alice", sha: str = A, session: str | None = "s1", **kw: object) -> DocumentRecord:
    values: dict[str, object] = {"id": 0, "owner": owner, "title": "t", "filename": "t.pdf", "file_size": 5,
                                 "sha256": sha, "created_at": "2026-01-01T00:00:00.123456+00:00",
                                 "session_id": session, "security": {"verdict": "clean", "findings": [1, "x"]}}
    values.update(kw)
    return DocumentRecord(**values)  # type: ignore[arg-type]


def test_insert_get_and_one_document_per_session(make: Callable[[], DocumentRepository]) -> None:
    repo = make()
    first = repo.insert(doc(page_count=3, pdf_version="1.7", original_filename="t?.pdf"))
    assert first.id > 0
    again = repo.insert(doc(title="other"))  # a retried completion: the first record comes back
    assert again == first
    assert repo.get("alice", first.id) == first and repo.by_session("s1") == first
    assert repo.get("bob", first.id) is None and repo.get("alice", first.id + 1000) is None
    assert first.security == {"verdict": "clean", "findings": [1, "x"]} and first.original_filename == "t?.pdf"
    assert first.created_at == "2026-01-01T00:00:00.123456+00:00"  # text in, the same text out


def test_documents_without_session_are_each_new(make: Callable[[], DocumentRepository]) -> None:
    repo = make()
    ids = {repo.insert(doc(session=None)).id for _ in range(3)}
    assert len(ids) == 3 and repo.count("alice") == 3


def test_owner_isolation_list_order_count_and_paging(make: Callable[[], DocumentRepository]) -> None:
    repo = make()
    mine = [repo.insert(doc(session=f"a{i}", sha=f"{i:064x}")).id for i in range(5)]
    repo.insert(doc(owner="bob", session="b0"))
    assert [d.id for d in repo.list("alice")] == mine[::-1]  # newest first
    assert [d.id for d in repo.list("alice", limit=2, offset=1)] == mine[3:1:-1]
    assert repo.count("alice") == 5 and repo.count("bob") == 1 and repo.count("carol") == 0
    assert all(d.owner == "bob" for d in repo.list("bob"))


def test_find_by_sha_is_the_owners_oldest(make: Callable[[], DocumentRepository]) -> None:
    repo = make()
    oldest = repo.insert(doc(session="1"))
    repo.insert(doc(session="2"))
    assert repo.find_by_sha("alice", A) == oldest
    assert repo.find_by_sha("bob", A) is None and repo.find_by_sha("alice", B) is None


def test_delete_returns_the_record_and_only_the_owners(make: Callable[[], DocumentRepository]) -> None:
    repo = make()
    mine, theirs = repo.insert(doc(session="1")), repo.insert(doc(owner="bob", session="2"))
    assert repo.delete("bob", mine.id) is None and repo.get("alice", mine.id) == mine
    assert repo.delete("alice", mine.id) == mine and repo.delete("alice", mine.id) is None
    assert repo.sha_in_use(A)  # bob still holds the content
    assert repo.delete("bob", theirs.id) == theirs and not repo.sha_in_use(A)


def test_index_status_and_indexed_views(make: Callable[[], DocumentRepository]) -> None:
    repo = make()
    a1, a2 = repo.insert(doc(session="1")), repo.insert(doc(session="2"))
    b1 = repo.insert(doc(sha=B, session="3"))
    bob = repo.insert(doc(owner="bob", sha=B, session="4"))
    assert repo.indexed_shas("alice") == set() and not repo.sha_indexed(A)
    repo.set_index_status(a1.id, "importing")
    assert repo.get("alice", a1.id) == replace(a1, index_status="importing")
    repo.set_index_status(a1.id, "failed", "boom")
    assert (got := repo.get("alice", a1.id)) is not None and (got.index_status, got.index_error) == ("failed", "boom")
    for d in (a1, a2, bob):
        repo.set_index_status(d.id, "indexed")
    assert repo.get("alice", a1.id) == replace(a1, index_status="indexed", index_error=None)
    assert repo.indexed_shas("alice") == {A} and repo.indexed_shas("bob") == {B}
    assert repo.sha_indexed(A) and repo.sha_indexed(B)  # any owner's
    by_sha = repo.indexed_by_sha("alice", [A, B])
    assert [d.id for d in by_sha[A]] == [a1.id, a2.id] and B not in by_sha  # b1 is not indexed
    assert repo.indexed_by_sha("alice", []) == {} and b1.index_status == "pending"


def test_a_reopened_repository_has_everything(make: Callable[[], DocumentRepository]) -> None:
    repo = make()
    stored = repo.insert(doc())
    repo.close()
    again = make()
    assert again.get("alice", stored.id) == stored and again.insert(doc()) == stored


def test_racing_inserts_for_one_session_make_one_document(make: Callable[[], DocumentRepository]) -> None:
    repos = [make(), make()]  # two replicas' repositories over one database
    got: list[DocumentRecord] = []
    barrier = threading.Barrier(8)

    def complete(i: int) -> None:
        barrier.wait()
        got.append(repos[i % 2].insert(doc(title=f"try {i}")))

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({d.id for d in got}) == 1 and repos[0].count("alice") == 1
