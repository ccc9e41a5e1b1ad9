"""``pdf-upload`` as a subprocess against a real server process (``python -m backend``).

End to end: an upload, byte-exact; the CLI SIGKILLed mid-upload and ``pdf-upload resume``
finishing with only the missing chunks; the exit codes scripts rely on (a server never
reached fails fast, Ctrl-C is 130); the client id watched on the WebSocket; a flagged
document's findings in the normal output.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pikepdf
import pytest
from pikepdf import Array, Dictionary, Name, String

from pdf_upload_client.cli import main
from pdf_upload_client.state import Fingerprint, StateStore, UploadState
from tests.e2e.conftest import MIB, ServerProcess, free_port
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent / "pdf-upload"
CLI = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "pdf_upload_client"]
P = "/api/documents/streaming"


def cli(*args: str, state: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args, "--state-dir", str(state)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def http(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.base_url + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def download_sha(server: ServerProcess, doc_id: int) -> str:
    h = hashlib.sha256()
    with urllib.request.urlopen(f"{server.base_url}/api/documents/{doc_id}/file", timeout=60) as resp:
        while block := resp.read(MIB):
            h.update(block)
    return h.hexdigest()


def results(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def main_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI's ``main`` in this process (no interpreter start-up): (exit code, out, err)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse: --help, usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_upload_end_to_end(server: ServerProcess, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    sha = make_pdf(pdf, 20 * MIB + 777, pages=2, text="CLI end to end", seed=11)
    run = cli(str(pdf), "--server", server.base_url, "--json", state=tmp_path / "state")
    assert run.returncode == 0, run.stderr
    (res,) = results(run.stdout)
    assert res["duplicate"] is False and res["chunks_sent"] == res["total_chunks"] >= 3
    doc_id = res["document_id"]
    assert doc_id in [d["id"] for d in http(server, "GET", "/api/documents")]
    assert download_sha(server, doc_id) == sha
    assert list((tmp_path / "state").glob("*.json")) == []
    again = cli(str(pdf), "--server", server.base_url, state=tmp_path / "state")  # same content: deduplicated
    assert again.returncode == 0 and f"document {doc_id}" in again.stdout and "duplicate" in again.stdout
    server.assert_no_tracebacks()


def test_cli_killed_mid_upload_then_resume(server: ServerProcess, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pdf = tmp_path / "big.pdf"
    sha = make_pdf(pdf, 40 * MIB, text="killed client", seed=12)
    state_dir = tmp_path / "state"
    # --limit-rate spreads the 5 chunks over ~2.5 s, so the kill lands mid-upload for sure.
    proc = subprocess.Popen([*CLI, str(pdf), "--server", server.base_url, "--state-dir", str(state_dir),
                             "--parallel", "2", "--limit-rate", "16M", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    saved: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            for f in state_dir.glob("*.json"):
                try:
                    saved = json.loads(f.read_text())
                except (OSError, ValueError):
                    continue
            if saved.get("acked"):
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        kout, kerr = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, (kout, kerr)
    assert saved.get("acked"), f"no chunk acknowledged before the deadline: {kerr!r}"
    total = saved["total_chunks"]
    before = http(server, "POST", f"{P}/resume", {"session_id": saved["session_id"]})
    held = len(before["uploaded_chunks"])
    assert 1 <= held < total

    code, out, err = main_in_process(capsys, "list", "--server", server.base_url, "--json",
                                     "--state-dir", str(state_dir))
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["session_id"] == saved["session_id"] and row["local_path"] == str(pdf.resolve())

    run = cli("resume", "--json", state=state_dir)
    assert run.returncode == 0, run.stderr
    (res,) = results(run.stdout)
    assert res["resumed"] is True and res["chunks_sent"] == total - held < total
    assert download_sha(server, res["document_id"]) == sha
    assert list(state_dir.glob("*.json")) == []
    server.assert_no_tracebacks()


def test_cli_exit_codes(server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "state")
    url = server.base_url
    notpdf = tmp_path / "notes.pdf"
    notpdf.write_bytes(b"just text, no PDF header\n" * 100)
    code, _, err = main_in_process(capsys, str(notpdf), "--server", url, "--state-dir", state)
    assert code == 2 and f"error: {notpdf}: not_a_pdf: " in err, err

    code, _, err = main_in_process(capsys, str(tmp_path / "missing.pdf"), "--server", url, "--state-dir", state)
    assert code == 1 and "file_error" in err
    assert main_in_process(capsys, "--parallel", "0", "x.pdf")[0] == 1  # usage
    assert main_in_process(capsys, "upload", "--title", "t", "a.pdf", "b.pdf")[0] == 1
    code, out, _ = main_in_process(capsys, "--help")
    assert code == 0 and "exit codes" in out

    pdf = tmp_path / "small.pdf"
    make_pdf(pdf, 3 * MIB, seed=13)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, _, err = main_in_process(capsys, str(pdf), "--server", dead, "--max-attempts", "1", "--state-dir", state)
    assert code == 3 and "unavailable" in err, err

    # A local state whose session the server does not know: resume impossible (4)...
    fp = Fingerprint.of(pdf)
    store = StateStore(Path(state))
    store.save(UploadState(url, "00000000-0000-4000-8000-000000000000", "c", fp.path, fp.size, fp.mtime_ns,
                           fp.sha256, 2 * MIB, 2))
    code, _, err = main_in_process(capsys, "resume", "--state-dir", state)
    assert code == 4 and "not_found" in err and "--restart-expired" in err, err
    # ... unless asked to start over.
    code, out, err = main_in_process(capsys, "resume", "--restart-expired", "--json", "--state-dir", state)
    assert code == 0, err
    assert results(out)[0]["chunks_sent"] == 2 and store.all() == []

    code, out, err = main_in_process(capsys, "search", "page", "--server", url, "--json")
    if code == 0:
        assert isinstance(json.loads(out), list)
    else:  # a server without the search endpoint: a distinct code
        assert code == 5 and "not_available" in err, err
    assert main_in_process(capsys, "list", "--server", url, "--state-dir", state)[0] == 0
    server.assert_no_tracebacks()


def test_cli_unreachable_server_fails_fast(blackhole: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pdf = tmp_path / "small.pdf"
    make_pdf(pdf, 100_000, seed=14)
    start = time.monotonic()
    code, _, err = main_in_process(capsys, str(pdf), "--server", blackhole, "--connect-timeout", "1",
                                   "--state-dir", str(tmp_path / "state"))
    assert code == 3 and f"unavailable: POST {P}/initiate: cannot reach {blackhole}: " in err, err
    assert time.monotonic() - start < 5  # not 8 attempts with backoff: the server was never reached
    assert "retry" not in err


async def test_cli_client_id_is_watchable_on_the_websocket(server: ServerProcess, tmp_path: Path) -> None:
    pdf = tmp_path / "watched.pdf"
    make_pdf(pdf, 5 * MIB, seed=15)
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http_session, \
            http_session.ws_connect(server.ws_url("watch-me.1")) as ws:
        proc = await asyncio.create_subprocess_exec(
            *CLI, str(pdf), "--server", server.base_url, "--client-id", "watch-me.1", "-v", "--json",
            "--state-dir", str(tmp_path / "state"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err
        while not any(e.get("type") == "upload_status" and e.get("status") == "completed" for e in events):
            events.append(json.loads((await ws.receive(timeout=10)).data))
    (res,) = results(out.decode())
    assert f"client id: watch-me.1: progress on {server.ws_url('watch-me.1')}" in err.decode()
    progress = [e["data"] for e in events if e.get("type") == "upload_progress"]
    assert progress and all(d["session_id"] == res["session_id"] for d in progress)


def test_cli_prints_flagged_findings(server: ServerProcess, tmp_path: Path) -> None:
    pdf = tmp_path / "linked.pdf"
    doc = pikepdf.new()
    page = doc.add_blank_page(page_size=(612, 792))
    link = Dictionary(Type=Name.Annot, Subtype=Name.Link, Rect=Array([72, 600, 300, 640]),
                      A=Dictionary(S=Name.URI, URI=String("https://example.com/landing?id=42")))
    page.obj.Annots = Array([doc.make_indirect(link)])
    doc.save(pdf)
    run = cli(str(pdf), "--server", server.base_url, state=tmp_path / "state")
    assert run.returncode == 0, run.stderr
    first, *findings = run.stdout.splitlines()
    assert first.startswith(f"{pdf}: document ") and ", flagged: " in first
    assert any(line.startswith("  uri: ") and "https://example.com/landing?id=42" in line for line in findings), \
        findings


def test_cli_sigint_exits_130_and_keeps_the_state(server: ServerProcess, tmp_path: Path) -> None:
    pdf = tmp_path / "interrupted.pdf"
    make_pdf(pdf, 40 * MIB, seed=16)
    state_dir = tmp_path / "state"
    proc = subprocess.Popen([*CLI, str(pdf), "--server", server.base_url, "--state-dir", str(state_dir),
                             "--parallel", "1", "--limit-rate", "8M", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and proc.poll() is None and not acked(state_dir):
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, (out, err)
    assert "interrupted: `pdf-upload resume` continues" in err
    assert acked(state_dir), "the local state is kept for `pdf-upload resume`"
    run = cli("resume", "--json", state=state_dir)
    assert run.returncode == 0 and results(run.stdout)[0]["resumed"] is True, run.stderr


def acked(state_dir: Path) -> list[int]:
    for f in state_dir.glob("*.json"):
        try:
            return list(json.loads(f.read_text()).get("acked", []))
        except (OSError, ValueError):
            continue
    return []
