"""Security through the API: every generated sample uploaded in 2 MiB chunks, judged by
the default policy while streaming and on completion; the policy endpoint."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from backend.services.progress import Envelope
from backend.services.pdf.policy import DEFAULT_REJECT_KINDS, LIMIT_KINDS
from backend.settings import Settings, temp_settings
from tests.conftest import MIB, Api
from tests.security_corpus import Sample, session_corpus
from tests.services.test_prefix_worker import tail_javascript

CS = 2 * MIB


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """One session per sample, back to back: no rate limit here (tests/api/test_limits.py has it).
    A test may add settings with ``parametrize("settings", [{...}], indirect=True)``."""
    return temp_settings(tmp_path / "srv", progress_interval_seconds=0, rate_limit_per_minute=0,
                         ip_rate_limit_per_minute=0, **getattr(request, "param", {}))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample]:
    return session_corpus(tmp_path_factory)


def expected_outcome(sample: Sample) -> tuple[int, str]:
    """(status, error code or verdict) under the default policy."""
    if sample.deep_raises == "NotAPdf":
        return 415, "not_a_pdf"
    if (sample.stream_kinds | sample.deep_kinds) & DEFAULT_REJECT_KINDS:
        return 422, "security_rejected"
    if sample.deep_raises == "InvalidPdf":
        return 422, "invalid_pdf"
    if sample.deep_raises == "SecurityRejected":
        return 422, "security_rejected"
    return 200, "clean" if sample.clean else "flagged"


async def _upload(api: Api, data: bytes) -> tuple[str, int, dict[str, Any]]:
    """Send every chunk, then complete; stop at the first refusal."""
    sid = (await api.initiate(len(data), chunk_size=CS, check_duplicates=False))["session_id"]
    total = -(-len(data) // CS)
    for i in range(total):
        r = await api.chunk(sid, i, data[i * CS:(i + 1) * CS])
        if r.status_code != 200:
            return sid, r.status_code, dict(r.json())
    r = await api.complete(sid)
    return sid, r.status_code, dict(r.json())


async def test_every_sample_gets_the_policy_outcome(api: Api, corpus: dict[str, Sample]) -> None:
    outcomes = {}
    for name, sample in sorted(corpus.items()):
        sid, status, body = await _upload(api, sample.path.read_bytes())
        want_status, want = expected_outcome(sample)
        got = body["document"]["security"]["verdict"] if status == 200 else body.get("error")
        outcomes[name] = (status, got)
        assert (status, got) == (want_status, want), f"{name}: {body}"
        if status == 422:  # a file that can never pass: its bytes are gone at once
            assert not (api.svc.settings.partial_dir / f"{sid}.part").exists(), name
        if status == 415:  # a wrong first chunk is not kept; the session may still get the right one
            resumed = (await api.http.post("/api/documents/streaming/resume", json={"session_id": sid})).json()
            assert 0 in resumed["missing_chunks"], name
    assert sum(1 for s, _ in outcomes.values() if s == 200) >= 5


async def test_rejection_during_streaming_fails_the_session_at_once(api: Api, corpus: dict[str, Sample]) -> None:
    """The JavaScript straddles the 2 MiB boundary: chunk 1 reveals it, and the upload
    is stopped there (no /complete needed); later chunks hear why."""
    seen: list[Envelope] = []
    api.svc.reporter.bus.subscribe(seen.append)
    data = corpus["split_keyword"].path.read_bytes()
    data += b"\n" * (3 * CS - len(data))  # a third chunk that is never needed
    sid = (await api.initiate(len(data), chunk_size=CS))["session_id"]
    assert (await api.chunk(sid, 0, data[:CS])).status_code == 200
    refused = await api.chunk(sid, 1, data[CS:2 * CS])
    assert refused.status_code == 422 and refused.json()["error"] == "security_rejected"
    assert any(f["kind"] == "javascript" for f in refused.json()["findings"])
    later = await api.chunk(sid, 2, data[2 * CS:])
    assert later.status_code == 422 and later.json()["error"] == "security_rejected"
    assert (await api.complete(sid)).json()["error"] == "security_rejected"
    assert not (api.svc.settings.partial_dir / f"{sid}.part").exists()
    failed = [e.event for e in seen if e.event["type"] == "upload_status" and e.event["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"] == "security_rejected"


async def test_a_damaged_file_that_carries_javascript_is_refused_for_it(
        api: Api, corpus: dict[str, Sample], monkeypatch: pytest.MonkeyPatch) -> None:
    """Found with a shared-corpus file (hex-obfuscated JavaScript, no %%EOF): what the
    streaming scan found is judged before qpdf opens the file, so the answer names what
    the file carries, not that it is damaged, and qpdf never parses a file already refused."""
    data = corpus["js_open_action"].path.read_bytes()
    data = data[:data.rindex(b"xref")]  # truncated: no xref, no %%EOF
    opened: list[Path] = []
    monkeypatch.setattr("backend.services.validation.inspect_pdf", lambda path, limits: opened.append(path))
    sid, status, body = await _upload(api, data)
    assert (status, body["error"]) == (422, "security_rejected"), body
    assert any(f["kind"] == "javascript" for f in body["findings"]), body
    assert opened == []
    assert not (api.svc.settings.partial_dir / f"{sid}.part").exists()


async def test_out_of_order_chunks_are_scanned_when_the_gap_fills(api: Api, corpus: dict[str, Sample]) -> None:
    data = corpus["split_keyword"].path.read_bytes()
    sid = (await api.initiate(len(data), chunk_size=CS))["session_id"]
    total = -(-len(data) // CS)
    for i in reversed(range(1, total)):
        assert (await api.chunk(sid, i, data[i * CS:(i + 1) * CS])).status_code == 200
    first = await api.chunk(sid, 0, data[:CS])  # fills the gap: the catch-up scans chunk 1
    await api.svc.completion.prefix.wait_caught_up(api.svc.sessions.live[sid])
    r = await api.complete(sid)
    assert first.status_code in (200, 422)
    assert r.json()["error"] == "security_rejected"


async def test_flagged_document_keeps_its_findings(api: Api, corpus: dict[str, Sample]) -> None:
    sid, status, body = await _upload(api, corpus["uri_objstm"].path.read_bytes())
    assert status == 200
    security = body["document"]["security"]
    assert security["verdict"] == "flagged"
    assert any(f["kind"] == "uri" for f in security["findings"]) and security["uris"]
    assert security["keywords"]["/ObjStm"] >= 1 and security["header_version"]
    stored = (await api.http.get(f"/api/documents/{body['document']['id']}")).json()
    assert stored["security"] == security


@pytest.mark.parametrize("settings", [{}, {"scan_stream_data_names": True}], indirect=True,
                         ids=["default", "pdfid-counts"])
async def test_clean_image_bytes_are_not_a_finding(api: Api, corpus: dict[str, Sample], settings: Settings) -> None:
    data = corpus["clean_image_name_bytes"].path.read_bytes()
    _, status, body = await _upload(api, data)
    assert status == 200 and body["document"]["security"]["verdict"] == "clean"
    counted = body["document"]["security"]["keywords"].get("/JavaScript", 0)
    if settings.scan_stream_data_names:
        assert counted >= 1  # counted, as pdfid does
    else:
        assert counted == 0  # by default names in image data are not even counted
    assert body["document"]["sha256"] == hashlib.sha256(data).hexdigest()


async def test_policy_endpoint(api: Api) -> None:
    for path in ("/files/security/config", "/api/documents/security/config"):
        config = (await api.http.get(path)).json()
        assert set(DEFAULT_REJECT_KINDS) == set(config["policy"]["reject_kinds"])
        assert config["limits"]["max_file_size"] == 1024 * MIB
        assert "inspection" in config and "streaming_scan" in config


async def test_policy_is_configurable(tmp_path: Any) -> None:
    from backend.settings import temp_settings
    from backend.services.validation import ValidationService

    settings = temp_settings(tmp_path, security_reject_kinds="uri,javascript", security_flag_kinds="")
    validation = ValidationService(settings, None, None)  # type: ignore[arg-type]
    assert validation.policy.reject_kinds == {"uri", "javascript"} | LIMIT_KINDS and not validation.policy.flag_kinds
    with pytest.raises(ValueError):
        ValidationService(temp_settings(tmp_path, security_reject_kinds="javscript"), None, None)  # type: ignore[arg-type]


async def test_scan_is_rebuilt_after_a_restart(settings: Any, corpus: dict[str, Sample]) -> None:
    """Half the file before a restart, the rest after: the JavaScript split across the
    boundary is still found (the scanner is rebuilt from the bytes on disk)."""
    import httpx

    from backend.app import create_app

    data = corpus["split_keyword"].path.read_bytes()
    data += b"\n" * (3 * CS - len(data))  # enough after the keyword for chunk 1 to reveal it
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            api = Api(http, app.state.services)
            sid = (await api.initiate(len(data), chunk_size=CS))["session_id"]
            assert (await api.chunk(sid, 0, data[:CS])).status_code == 200
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            api = Api(http, app.state.services)
            resumed = (await http.post("/api/documents/streaming/resume", json={"session_id": sid})).json()
            assert resumed["uploaded_chunks"] == [0]
            r = await api.chunk(sid, 1, data[CS:2 * CS])
            assert r.status_code == 422 and r.json()["error"] == "security_rejected"


async def test_a_chunk_racing_the_rejection_hears_why(api: Api, corpus: dict[str, Sample]) -> None:
    """Chunk 2 is in flight while chunk 1 reveals the JavaScript: it is either done
    before (200) or told security_rejected (422), never a bare 409."""
    import asyncio

    data = corpus["split_keyword"].path.read_bytes()
    data += b"\n" * (3 * CS - len(data))
    sid = (await api.initiate(len(data), chunk_size=CS))["session_id"]
    assert (await api.chunk(sid, 0, data[:CS])).status_code == 200
    one, two = await asyncio.gather(api.chunk(sid, 1, data[CS:2 * CS]), api.chunk(sid, 2, data[2 * CS:]))
    assert one.status_code == 422 and one.json()["error"] == "security_rejected"
    assert two.status_code == 200 or two.json()["error"] == "security_rejected", two.text


# -- the end of the file: the chunk that completes it answers for its last bytes ----------


async def test_javascript_in_the_last_kib_of_a_one_chunk_file_is_refused_on_that_chunk(api: Api) -> None:
    """The scanner's 16 KiB look-ahead is flushed by the chunk that ends the file, so
    the refusal is that chunk's answer, not /complete's."""
    data = tail_javascript(200_000)
    sid = (await api.initiate(len(data), chunk_size=CS))["session_id"]
    refused = await api.chunk(sid, 0, data)
    assert refused.status_code == 422 and refused.json()["error"] == "security_rejected", refused.text
    assert any(f["kind"] == "javascript" for f in refused.json()["findings"]), refused.text
    assert (await api.complete(sid)).json()["error"] == "security_rejected"
    assert not (api.svc.settings.partial_dir / f"{sid}.part").exists()


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1], [1, 0, 2]], ids=["in-order", "final-first", "final-last"])
async def test_the_chunk_that_completes_the_prefix_is_refused_for_the_tail(api: Api, order: list[int]) -> None:
    """JavaScript in the final chunk's last KiB: whichever chunk's arrival makes the
    contiguous prefix reach the end of the file is answered 422 (for a final chunk sent
    ahead of a gap, it is the chunk that fills the gap); the ones before it, 200."""
    data = tail_javascript(2 * CS + CS // 2)
    sid = (await api.initiate(len(data), chunk_size=CS))["session_id"]
    for i in order[:-1]:
        r = await api.chunk(sid, i, data[i * CS:(i + 1) * CS])
        assert r.status_code == 200, (i, r.text)
    last = order[-1]
    refused = await api.chunk(sid, last, data[last * CS:(last + 1) * CS])
    assert refused.status_code == 422 and refused.json()["error"] == "security_rejected", refused.text
    assert any(f["kind"] == "javascript" for f in refused.json()["findings"]), refused.text
    assert (await api.complete(sid)).json()["error"] == "security_rejected"
    assert not (api.svc.settings.partial_dir / f"{sid}.part").exists()


async def test_a_tail_finding_that_only_flags_is_kept_once(api: Api, tmp_path: Path) -> None:
    """Trailing data is known only at the end: the last chunk reports it (flagged, 200),
    and the document lists it once, as the scan finished at that chunk."""
    from tests.pdfgen import make_pdf

    seen: list[Envelope] = []
    api.svc.reporter.bus.subscribe(seen.append)
    path = tmp_path / "clean.pdf"
    make_pdf(path, 300_000)
    data = path.read_bytes() + b"\n<!-- appended after the end -->\n"
    sid = (await api.initiate(len(data), chunk_size=CS))["session_id"]
    assert (await api.chunk(sid, 0, data)).status_code == 200
    flagged = [e.event for e in seen if e.event["type"] == "upload_status" and e.event.get("findings")]
    assert [f["kind"] for e in flagged for f in e["findings"]] == ["trailing_data"], flagged
    r = await api.complete(sid)
    assert r.status_code == 200, r.text
    security = r.json()["document"]["security"]
    assert security["verdict"] == "flagged"
    assert [f["kind"] for f in security["findings"]].count("trailing_data") == 1, security


async def test_without_the_streaming_scan_the_tail_is_refused_on_completion(tmp_path: Path) -> None:
    import httpx

    from backend.app import create_app

    app = create_app(temp_settings(tmp_path / "srv", progress_interval_seconds=0, stream_scan=False))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            api = Api(http, app.state.services)
            data = tail_javascript(200_000)
            sid = (await api.initiate(len(data), chunk_size=CS))["session_id"]
            assert (await api.chunk(sid, 0, data)).status_code == 200
            r = await api.complete(sid)
            assert r.status_code == 422 and r.json()["error"] == "security_rejected", r.text
