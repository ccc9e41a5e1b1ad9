"""PostgresTextIndex's generations: contents spread over many partitions rank exactly as
in one, and the per-generation term counts stay exact through replaces and deletes.
(The contract itself is tests/services/test_index_contract.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from backend.storage.postgres import text_index
from backend.storage.postgres.text_index import PostgresTextIndex
from backend.storage.text_index import StoredNode
from tests.realservers.postgres import PostgresServer

WORDS = "the report shows that each section of this document covers a topic in some detail".split()


def text(i: int) -> str:
    rare = ["zephyr", "quartz", "ember", "lantern", "orchid"]
    return " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(5 + i % 11)) + " " + " ".join(
        rare[(i + k) % len(rare)] for k in range(i % 4))


def contents() -> dict[str, list[StoredNode]]:
    out = {}
    for c in range(12):
        sha = f"{c:064x}"
        out[sha] = [StoredNode(f"{sha}:p{p}:0", sha, p, text(c * 5 + p)) for p in range(1, 2 + c % 4)]
    return out


@pytest.fixture
def second_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


def answers(store: PostgresTextIndex, shas: set[str]) -> list[list[tuple[str, float]]]:
    return [[(m.node.node_id, round(m.score, 9)) for m in store.search(q, shas, 7)]
            for q in ("zephyr", "quartz report", "ember lantern orchid", "the report", "section topic detail")]


def check_counts(url: str) -> int:
    """The stored term counts are those of the stored nodes, per generation; how many
    generations there are."""
    with psycopg.connect(url) as db:
        stored = set(db.execute("SELECT gen, lexeme, df FROM index_terms").fetchall())
        counted = set(db.execute("SELECT n.gen, x.lexeme, count(*) FROM index_nodes n, unnest(n.tsv) x "
                                 "GROUP BY n.gen, x.lexeme").fetchall())
        assert stored == counted
        return int(db.execute("SELECT count(*) FROM index_gens").fetchone()[0])  # type: ignore[index]


def test_many_generations_rank_as_one(postgres_url: str, second_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    one = PostgresTextIndex(postgres_url)
    for sha, nodes in contents().items():
        one.put(sha, nodes)
    monkeypatch.setattr(text_index, "_GENERATION_NODES", 3)
    many = PostgresTextIndex(second_url)
    for sha, nodes in contents().items():
        many.put(sha, nodes)
    assert check_counts(postgres_url) == 1 and check_counts(second_url) > 5
    shas = set(contents())
    assert answers(many, shas) == answers(one, shas)
    some = set(list(shas)[::3])
    assert answers(many, some) == answers(one, some)
    # replace and delete: the content moves to the newest generation, its old one forgets it
    for store in (one, many):
        first, second = list(shas)[:2]
        store.put(first, [StoredNode(f"{first}:p1:0", first, 1, "zephyr zephyr report")])
        assert store.delete(second) > 0
        assert store.node_count() == sum(len(n) for n in contents().values()) - len(contents()[first]) + 1 \
            - len(contents()[second])
    check_counts(postgres_url)
    check_counts(second_url)
    assert answers(many, shas) == answers(one, shas)
    assert many.nodes(first) == one.nodes(first)
    one.close()
    many.close()


def test_a_database_of_the_single_table_layout_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE TABLE index_nodes (id BIGINT PRIMARY KEY)")
    with pytest.raises(psycopg.errors.RaiseException, match="layout before generations"):
        PostgresTextIndex(postgres_url)
