"""Refusals of malformed requests read well (hardening, point 7): a person reads them."""

from __future__ import annotations

import pytest

from backend.api.wording import describe, describe_all, field_name
from tests.conftest import Api, envelope


def test_field_names_as_the_client_sent_them() -> None:
    assert field_name(("body", "file_size")) == "file_size"
    assert field_name(("query", "q")) == "q"
    assert field_name(("body", "items", 2, "name")) == "items[2].name"
    assert field_name(("body",)) == "the request body"


def test_sentences() -> None:
    assert describe({"loc": ("body", "file_size"), "type": "greater_than", "ctx": {"gt": 0}}) == \
        "the file is empty: there is nothing to upload"
    assert describe({"loc": ("query", "top_k"), "type": "less_than_equal", "ctx": {"le": 100}}) == \
        "top_k must be at most 100"
    assert describe({"loc": ("body", "title"), "type": "string_too_long", "ctx": {"max_length": 500}}) == \
        "title must have at most 500 characters"
    assert describe({"loc": ("body", "x"), "type": "brand_new_type", "msg": "Input is odd"}) == "x: input is odd"
    twice = {"loc": ("body", "filename"), "type": "missing"}
    assert describe_all([twice, twice]) == "filename is required"


@pytest.mark.parametrize(("body", "message"), [
    ({"filename": "a.pdf", "file_size": 0}, "the file is empty: there is nothing to upload"),
    ({"filename": "a.pdf"}, "file_size is required"),
    ({"filename": "a.pdf", "file_size": "lots"}, "file_size must be a whole number"),
    ({"filename": "a.pdf", "file_size": 10, "expected_hash": "abc"},
     "expected_hash must be the file's SHA-256 as 64 hex digits"),
    ({"filename": "a.pdf", "file_size": 10, "client_id": "no spaces please"},
     "client_id must be 1-128 characters of A-Z a-z 0-9 _ . : -"),
    ({"filename": "", "file_size": 10}, "filename is empty"),
])
async def test_initiate_refusals(api: Api, body: dict[str, object], message: str) -> None:
    r = await api.http.post("/api/documents/streaming/initiate", json=body)
    assert envelope(r, "invalid_request", 422)["message"] == message


async def test_search_and_documents_refusals(api: Api) -> None:
    r = await api.http.get("/api/documents/search", params={"q": ""})
    assert envelope(r, "invalid_request", 422)["message"] == "the search needs at least one word"
    r = await api.http.get("/api/documents/search")
    assert envelope(r, "invalid_request", 422)["message"] == "the search needs at least one word (the q parameter)"
    r = await api.http.get("/api/documents/0")
    assert envelope(r, "invalid_request", 422)["message"] == "there is no document with that id (ids start at 1)"
    r = await api.http.get("/api/documents/abc")
    assert envelope(r, "invalid_request", 422)["message"] == "doc_id must be a whole number"
    r = await api.http.post("/api/documents/streaming/initiate", content=b"{not json",
                            headers={"content-type": "application/json"})
    assert envelope(r, "invalid_request", 422)["message"] == "the request body is not valid JSON"
