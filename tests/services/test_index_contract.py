"""The text index contract (``backend/storage/text_index.py``), run against every store.

Each test gets a fresh store from every factory in ``STORES``: SQLite FTS5, and
PostgreSQL (a real server from tests/realservers, a fresh database per test). The last
tests run the DocumentIndex over each store: what the import service relies on (one
entry per content, owner isolation inside the ranking, restart).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backend.importer.index import DocumentIndex
from backend.storage.postgres.text_index import PostgresTextIndex
from backend.storage.sqlite_index import SqliteTextIndex
from backend.storage.text_index import StoredNode, TextIndexStore

# name -> a store under (a directory, the test's request): the same test gets the same index back
STORES: dict[str, Callable[[Path, pytest.FixtureRequest], TextIndexStore]] = {
    "sqlite-fts5": lambda root, _: SqliteTextIndex(root / "index.sqlite3"),
    "postgres": lambda _, req: PostgresTextIndex(req.getfixturevalue("postgres_url")),
}
A, B, C = "a" * 64, "b" * 64, "c" * 64
FILLER = "the report shows that each section of this document covers a topic in some detail".split()


@pytest.fixture(params=sorted(STORES))
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], TextIndexStore]]:
    opened: list[TextIndexStore] = []

    def factory() -> TextIndexStore:
        store = STORES[request.param](tmp_path, request)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def node(sha: str, page: int, n: int, text: str, **meta: object) -> StoredNode:
    return StoredNode(f"{sha}:p{page}:{n}", sha, page, text, dict(meta))


def filler(i: int) -> str:
    return " ".join(FILLER[(i + j) % len(FILLER)] for j in range(40))


def test_put_has_nodes_count_and_delete(make: Callable[[], TextIndexStore]) -> None:
    store = make()
    assert not store.has(A) and store.node_count() == 0 and store.nodes(A) == []
    nodes = [node(A, 1, 0, "alpha beta", document_id=1, title="T", filename="f.pdf"), node(A, 2, 0, "gamma")]
    store.put(A, nodes)
    assert store.has(A) and not store.has(B) and store.node_count() == 2
    assert store.nodes(A) == nodes  # order, text and JSON metadata round-trip
    assert store.delete(A) == 2 and store.delete(A) == 0
    assert not store.has(A) and store.node_count() == 0 and store.search("alpha", {A}, 5) == []


def test_put_replaces_a_contents_nodes(make: Callable[[], TextIndexStore]) -> None:
    store = make()
    store.put(A, [node(A, 1, 0, "oldword here"), node(A, 1, 1, "more oldword")])
    store.put(A, [node(A, 1, 0, "newword here")])
    assert store.node_count() == 1 and [n.text for n in store.nodes(A)] == ["newword here"]
    assert store.search("oldword", {A}, 5) == []
    assert [m.node.node_id for m in store.search("newword", {A}, 5)] == [f"{A}:p1:0"]


def test_ranking_is_bm25_like(make: Callable[[], TextIndexStore]) -> None:
    store = make()
    store.put(A, [node(A, p, 0, filler(p)) for p in range(1, 21)])
    store.put(B, [node(B, 1, 0, filler(1) + " zephyr"), node(B, 2, 0, "zephyr zephyr zephyr quartz"),
                  node(B, 3, 0, filler(3) + " quartz")])
    hits = store.search("zephyr", {A, B}, 5)
    assert [h.node.page for h in hits] == [2, 1]  # more of the word, in a shorter node, first
    assert hits[0].score > hits[1].score > 0
    # a rare word outweighs a common one; nodes with neither are not hits
    hits = store.search("quartz report", {A, B}, 3)
    assert [(h.node.sha256, h.node.page) for h in hits[:2]] == [(B, 2), (B, 3)]
    assert store.search("nosuchword", {A, B}, 5) == []
    # inflections meet (stemming), case does not matter
    store.put(C, [node(C, 1, 0, "Kittens were RUNNING")])
    assert [h.node.sha256 for h in store.search("kitten runs", {C}, 5)] == [C]


def test_only_common_words_still_rank(make: Callable[[], TextIndexStore]) -> None:
    store = make()
    store.put(A, [node(A, p, 0, filler(p)) for p in range(1, 6)])
    hits = store.search("the report", {A}, 3)
    assert len(hits) == 3 and all(h.node.sha256 == A for h in hits)


@pytest.mark.parametrize("query", ['"', 'NEAR(a b)', "a OR", "* - ^ : ( )", "report AND", "col:report",
                                   "'; DROP TABLE nodes; --", "\x00 report"])
def test_a_query_is_words_never_syntax(make: Callable[[], TextIndexStore], query: str) -> None:
    store = make()
    store.put(A, [node(A, 1, 0, "a report about near things and col values")])
    hits = store.search(query, {A}, 5)
    assert all(h.node.sha256 == A for h in hits)
    assert store.node_count() == 1


# a few visible contents, or many (the store may filter differently past some number)
@pytest.mark.parametrize("others", [0, 200])
def test_only_visible_contents_rank_and_top_k_is_theirs(make: Callable[[], TextIndexStore], others: int) -> None:
    store = make()
    pad = {f"{n:064x}" for n in range(others)}  # visible contents that have no nodes
    # B's nodes match better; A's must still fill top_k when only A is visible
    store.put(B, [node(B, p, 0, "secret secret secret") for p in range(1, 11)])
    store.put(A, [node(A, 1, 0, filler(1) + " secret"), node(A, 2, 0, filler(2) + " secret")])
    store.put(C, [node(C, p, 0, filler(p)) for p in range(1, 30)])
    assert [h.node.sha256 for h in store.search("secret", {A} | pad, 2)] == [A, A]
    assert {h.node.sha256 for h in store.search("secret", {A, B} | pad, 12)} == {A, B}
    assert store.search("secret", set(), 5) == [] and store.search("secret", {C} | pad, 5) == []
    # only common words (the filler is in every node of C): still only what is visible
    assert {h.node.sha256 for h in store.search("the report", {A} | pad, 5)} == {A}


def test_vectors_nearest_filtered_and_dropped_with_their_content(make: Callable[[], TextIndexStore]) -> None:
    store = make()
    store.put(A, [node(A, 1, 0, "one"), node(A, 2, 0, "two")])
    store.put(B, [node(B, 1, 0, "three")])
    assert not store.has_vectors(A) and store.nearest([1.0, 0.0], {A, B}, 3) == []
    store.put_vectors(A, [(f"{A}:p1:0", [1.0, 0.0]), (f"{A}:p2:0", [0.0, 2.0])])
    store.put_vectors(B, [(f"{B}:p1:0", [0.9, 0.1])])
    assert store.has_vectors(A) and store.has_vectors(B)
    near = store.nearest([0.0, 1.0], {A, B}, 2)
    assert [m.node.node_id for m in near] == [f"{A}:p2:0", f"{B}:p1:0"]
    assert near[0].score == pytest.approx(1.0)  # cosine: the length does not count
    assert [m.node.sha256 for m in store.nearest([1.0, 0.0], {B}, 5)] == [B]
    store.put(A, [node(A, 1, 0, "one again")])  # new nodes: the old vectors are gone
    assert not store.has_vectors(A)
    store.delete(B)
    assert not store.has_vectors(B) and store.nearest([1.0, 0.0], {A, B}, 5) == []


def test_a_reopened_store_has_everything(make: Callable[[], TextIndexStore]) -> None:
    store = make()
    store.put(A, [node(A, 1, 0, "durable words", title="T")])
    store.put_vectors(A, [(f"{A}:p1:0", [1.0])])
    store.close()
    again = make()
    assert again.has(A) and again.has_vectors(A) and again.node_count() == 1
    assert again.nodes(A)[0].metadata == {"title": "T"}
    assert [h.node.page for h in again.search("durable", {A}, 1)] == [1]


def test_a_search_sees_a_content_whole_or_not_at_all(make: Callable[[], TextIndexStore]) -> None:
    store = make()
    store.put(B, [node(B, 1, 0, filler(1))])
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while not stop.is_set():
                store.put(A, [node(A, p, 0, "flicker " + filler(p)) for p in range(1, 41)])
                store.delete(A)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = {len(store.search("flicker", {A, B}, 100)) for _ in range(60)}
    finally:
        stop.set()
        thread.join()
    assert not errors and seen <= {0, 40}


# -- the DocumentIndex over each store: what the import service relies on ----------------------


def pages(word: str, n: int) -> list[str]:
    return [f"{filler(p)}. Page {p} speaks of {word}{p} alone." for p in range(1, n + 1)]


def test_one_entry_per_content_and_isolation_through_the_index(make: Callable[[], TextIndexStore]) -> None:
    index = DocumentIndex(make())
    meta = {"document_id": 1, "title": "T", "filename": "f.pdf"}
    index.add(A, index.split(A, pages("walrus", 3), meta))
    count = index.node_count
    index.add(A, index.split(A, pages("walrus", 3), meta))  # the same content again: replaced, not doubled
    assert index.node_count == count and index.has(A)
    index.add(B, index.split(B, pages("otter", 2), meta | {"document_id": 2}))
    hits = index.search("walrus2", {A, B}, 3)
    assert (hits[0].sha256, hits[0].page) == (A, 2) and "walrus2" in hits[0].text and hits[0].score > 0
    assert index.search("walrus2", {B}, 3) == [] and index.search("walrus2", set(), 3) == []
    assert index.remove(A) == count and not index.has(A) and index.search("walrus2", {A, B}, 3) == []
