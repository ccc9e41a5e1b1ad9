"""``pdf-upload``: upload PDFs, resume unfinished uploads, list sessions, search.

Argument parsing and the commands; what is shown lives in :mod:`pdf_upload_client.output`.
The exit codes (see ``EPILOG``) are the contract for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.progress import TaskID

from pdf_upload_client.api import ADMISSION_CODES, CONNECT_TIMEOUT, Api, ClientError, RetryPolicy, ServerError
from pdf_upload_client.output import EXIT_INTERRUPTED, EXIT_NO_SEARCH, EXIT_OK, EXIT_USAGE, Ui, format_bytes
from pdf_upload_client.state import StateStore, UploadState
from pdf_upload_client.uploader import GONE_CODES, AsyncUploader, ResumeImpossible, new_client_id

DEFAULT_SERVER = "http://127.0.0.1:8000"
COMMANDS = ("upload", "resume", "list", "search", "cancel")
VALUE_OPTIONS = {"--server", "--state-dir", "--api-key", "--parallel", "-p", "--jobs", "-j", "--limit-rate",
                 "--max-attempts", "--top-k", "--title", "--client-id", "--connect-timeout"}
CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # what the server accepts
EPILOG = """\
commands:
  pdf-upload FILE...             upload (continues a file's unfinished upload automatically)
  pdf-upload resume              continue every unfinished upload in the state directory
  pdf-upload list                the server's resumable sessions
  pdf-upload search QUERY        search the imported text
  pdf-upload cancel SESSION_ID   cancel a session (server and local state)

exit codes:
  0    success
  1    usage error (bad arguments, missing or unreadable file)
  2    a file or request refused by the server (not a PDF, security rejected, too large...)
  3    server unavailable: not reached within --connect-timeout (not retried), or
       the connection lost mid-way and every retry failed
  4    resume impossible (session expired or gone, file changed)
  5    the server has no search endpoint
  130  interrupted (Ctrl-C): the local state is kept, `pdf-upload resume` continues
With several files the highest code wins. Errors go to stderr as
"error: <file>: <code>: <message>".

environment: PDF_UPLOAD_SERVER, PDF_UPLOAD_API_KEY, PDF_UPLOAD_STATE_DIR
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 1, not argparse's 2
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _rate(text: str) -> float:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    mult = units.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if mult != 1 else text) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (e.g. 500k, 20M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _client_id(text: str) -> str:
    if not CLIENT_ID.match(text):
        raise argparse.ArgumentTypeError("1 to 128 of A-Z a-z 0-9 _ . : -")
    return text


def ws_url(server: str, client_id: str) -> str:
    """Where a client id's progress events are: ``/ws/{client_id}`` on the server."""
    scheme, sep, rest = server.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}{sep}{rest}/ws/{client_id}"


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--server", help=f"server URL (env PDF_UPLOAD_SERVER, default {DEFAULT_SERVER})")
    common.add_argument("--state-dir", type=Path, help="local resume state (env PDF_UPLOAD_STATE_DIR, "
                        "default ~/.local/state/pdf-upload)")
    common.add_argument("--api-key", default=os.environ.get("PDF_UPLOAD_API_KEY"),
                        help="sent as 'Authorization: Bearer KEY' (env PDF_UPLOAD_API_KEY)")
    common.add_argument("--json", action="store_true", help="machine-readable results on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes")
    common.add_argument("-v", "--verbose", action="store_true",
                        help="also say the client id, where its progress can be watched (/ws/CLIENT_ID)")
    common.add_argument("--max-attempts", type=_positive, default=8, help="tries per request (default 8)")
    common.add_argument("--connect-timeout", type=_seconds, default=CONNECT_TIMEOUT, metavar="SECONDS",
                        help=f"give up on a server not reached within this (default {CONNECT_TIMEOUT:g})")
    sending = Parser(add_help=False)
    sending.add_argument("--client-id", type=_client_id,
                         help="sent at /initiate and /resume: the uploads' progress goes to /ws/CLIENT_ID "
                              "(default: a new one per run)")
    sending.add_argument("-p", "--parallel", type=_positive, default=4, help="chunks in flight per file (4)")
    sending.add_argument("--limit-rate", type=_rate, help="average upload rate cap per file, e.g. 20M")

    parser = Parser(prog="pdf-upload", description="Resumable chunked PDF upload client.", epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    up = sub.add_parser("upload", parents=[common, sending], help="upload files (the default command)",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("files", nargs="+", type=Path, metavar="FILE")
    up.add_argument("-j", "--jobs", type=_positive, default=1, help="files uploaded at once (1)")
    up.add_argument("--title", help="document title (one file only; default: the file name's stem)")
    up.add_argument("--no-resume", action="store_true", help="ignore local state: start every file over")
    res = sub.add_parser("resume", parents=[common, sending], help="continue unfinished uploads",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    res.add_argument("--restart-expired", action="store_true",
                     help="upload again from scratch the files whose session expired or is gone")
    sub.add_parser("list", parents=[common], help="the server's resumable sessions")
    search = sub.add_parser("search", parents=[common], help="search the imported documents")
    search.add_argument("query")
    search.add_argument("--top-k", type=_positive, default=10)
    cancel = sub.add_parser("cancel", parents=[common], help="cancel an upload session")
    cancel.add_argument("session_id")
    return parser


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Put the command first (``upload`` when the first positional is not a command)."""
    args = list(argv)
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            return ["upload", *args]
        if tok.startswith("-") and tok != "-":
            i += 2 if tok in VALUE_OPTIONS else 1
            continue
        if tok in COMMANDS:
            return [tok, *args[:i], *args[i + 1:]]
        return ["upload", *args]
    return args


def retry_note(what: str, attempt: int, delay: float, error: Exception) -> str:
    """One line about a retry; a busy server's says why the upload waits and for how long."""
    if isinstance(error, ServerError) and (error.code in ADMISSION_CODES or error.code == "rate_limited"):
        told = "as the server asked" if error.retry_after is not None else "backing off"
        return f"{what}: waiting {delay:.0f} s, {told}: the server is busy ({error.code}: {error.message})"
    detail = error.code if isinstance(error, ServerError) else type(error).__name__
    return f"{what}: {detail}, retry {attempt} in {delay:.1f}s"


def _uploader(args: argparse.Namespace, server: str, store: StateStore, ui: Ui) -> AsyncUploader:
    def on_retry(what: str, attempt: int, delay: float, error: Exception) -> None:
        ui.note(server, retry_note(what, attempt, delay, error))
    return AsyncUploader(server, parallel=getattr(args, "parallel", 4), store=store, api_key=args.api_key,
                         retry=RetryPolicy(max_attempts=args.max_attempts), connect_timeout=args.connect_timeout,
                         limit_rate=getattr(args, "limit_rate", None), client_id=getattr(args, "client_id", None),
                         on_retry=on_retry)


def _say_client_id(args: argparse.Namespace, servers: Sequence[str], ui: Ui) -> None:
    for server in dict.fromkeys(servers):
        ui.detail("client id", f"{args.client_id}: progress on {ws_url(server, args.client_id)}")


async def cmd_upload(args: argparse.Namespace, server: str, store: StateStore, ui: Ui) -> int:
    jobs = asyncio.Semaphore(args.jobs)
    _say_client_id(args, [server], ui)
    async with _uploader(args, server, store, ui) as up:
        async def one(path: Path) -> int:
            async with jobs:
                task: TaskID | None = None
                try:
                    if not path.is_file():
                        raise FileNotFoundError(2, "no such file", str(path))
                    task = ui.bar(path.name, path.stat().st_size)
                    res = await up.upload(path, title=args.title, progress=ui.progress_for(task),
                                          notify=lambda msg: ui.note(str(path), msg), resume=not args.no_resume)
                except (ClientError, OSError) as exc:
                    if task is not None:
                        ui.bars.remove_task(task)  # the error line says what happened
                    return ui.error(str(path), exc)
                ui.bars.update(task, completed=path.stat().st_size)
                ui.result(res, str(path))
                return EXIT_OK
        with ui.bars:
            codes = await asyncio.gather(*(one(p) for p in args.files))
    return max(codes, default=EXIT_OK)


async def cmd_resume(args: argparse.Namespace, server: str | None, store: StateStore, ui: Ui) -> int:
    states = [s for s in store.all() if server is None or s.server == server]
    if not states:
        ui.note("resume", f"nothing to resume in {store.dir}")
        return EXIT_OK
    _say_client_id(args, [s.server for s in states], ui)
    codes: list[int] = []
    with ui.bars:
        for state in states:
            codes.append(await _resume_one(args, state, store, ui))
    return max(codes)


async def _resume_one(args: argparse.Namespace, state: UploadState, store: StateStore, ui: Ui) -> int:
    async with _uploader(args, state.server, store, ui) as up:
        task = ui.bar(Path(state.path).name, state.size)
        try:
            try:
                res = await up.resume(state, progress=ui.progress_for(task))
            except ResumeImpossible as exc:
                if exc.code not in GONE_CODES or not args.restart_expired:
                    hint = ("; --restart-expired uploads it again" if exc.code in GONE_CODES
                            else "; `pdf-upload FILE` uploads it again from scratch")
                    return ui.error(state.path, ResumeImpossible(exc.code, exc.message + hint))
                ui.note(state.path, f"session {state.session_id} is gone ({exc.code}): starting over")
                store.delete(state)
                res = await up.upload(state.path, title=state.title, progress=ui.progress_for(task), resume=False)
        except (ClientError, OSError) as exc:
            ui.bars.remove_task(task)
            return ui.error(state.path, exc)
        ui.result(res, state.path)
        return EXIT_OK


async def cmd_list(args: argparse.Namespace, server: str, store: StateStore, ui: Ui) -> int:
    async with Api(server, api_key=args.api_key, retry=RetryPolicy(max_attempts=args.max_attempts),
                   connect_timeout=args.connect_timeout) as api:
        sessions = await api.resumable()
    local = {s.session_id: s.path for s in store.all() if s.server == server}
    if args.json:
        print(json.dumps([{**s, "local_path": local.get(s.get("session_id", ""))} for s in sessions]))
        return EXIT_OK
    if not sessions:
        ui.out.print("no resumable sessions", markup=False)
        return EXIT_OK
    ui.table(["session_id", "filename", "chunks", "progress", "size", "age h", "local file"], [
        [str(s.get("session_id")), str(s.get("filename")), f"{s.get('uploaded_chunks')}/{s.get('total_chunks')}",
         f"{s.get('progress_percentage')}%", format_bytes(s.get("total_size") or 0), str(s.get("age_hours")),
         local.get(str(s.get("session_id")), "-")]
        for s in sessions])
    return EXIT_OK


async def cmd_search(args: argparse.Namespace, server: str, store: StateStore, ui: Ui) -> int:
    async with Api(server, api_key=args.api_key, retry=RetryPolicy(max_attempts=args.max_attempts),
                   connect_timeout=args.connect_timeout) as api:
        try:
            hits = await api.search(args.query, args.top_k)
        except ServerError as exc:
            # No route yet: 404/405, or the /{doc_id} route refusing "search" as an id.
            if exc.status in (404, 405) or (exc.status == 422 and "doc_id" in exc.message):
                ui.err.print(f"error: search: not_available: {server} has no search endpoint "
                             f"(GET /api/documents/search answered {exc.status})", markup=False)
                return EXIT_NO_SEARCH
            raise
    if args.json:
        print(json.dumps(hits))
        return EXIT_OK
    if not hits:
        ui.out.print("no hits", markup=False)
        return EXIT_OK
    ui.table(["score", "document_id", "title", "page", "text"], [
        [f"{h['score']:.3f}" if isinstance(h.get("score"), (int, float)) else str(h.get("score")),
         str(h.get("document_id")), str(h.get("title", "")), str(h.get("page", "")),
         " ".join(str(h.get("text", "")).split())[:200]]
        for h in hits])
    return EXIT_OK


async def cmd_cancel(args: argparse.Namespace, server: str, store: StateStore, ui: Ui) -> int:
    local = store.find_session(args.session_id)
    async with _uploader(args, local.server if local else server, store, ui) as up:
        await up.cancel(args.session_id, "cancelled with pdf-upload cancel")
    print(f"{args.session_id}: cancelled")
    return EXIT_OK


async def run(args: argparse.Namespace, ui: Ui) -> int:
    explicit = args.server or os.environ.get("PDF_UPLOAD_SERVER")
    server = (explicit or DEFAULT_SERVER).rstrip("/")
    store = StateStore(args.state_dir)
    if args.command in ("upload", "resume"):
        args.client_id = args.client_id or new_client_id()  # one per run: one WebSocket sees every file
    if args.command == "upload":
        return await cmd_upload(args, server, store, ui)
    if args.command == "resume":
        return await cmd_resume(args, explicit.rstrip("/") if explicit else None, store, ui)
    command = {"list": cmd_list, "search": cmd_search, "cancel": cmd_cancel}[args.command]
    try:
        return await command(args, server, store, ui)
    except (ClientError, OSError) as exc:
        return ui.error(args.command, exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point; returns (and exits with) the documented exit code."""
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    if not raw:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(normalize_argv(raw))
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "upload" and args.title and len(args.files) > 1:
        parser.error("--title needs exactly one FILE")
    ui = Ui(args)
    try:
        return asyncio.run(run(args, ui))
    except KeyboardInterrupt:
        ui.err.print("interrupted: `pdf-upload resume` continues", markup=False)
        return EXIT_INTERRUPTED
