"""Settings from the ``STREAMING_*`` environment (and ``.env``), injected everywhere.

``create_app(settings)`` takes a :class:`Settings`; :func:`get_settings` is the cached
default for ``python -m backend``. Tests build their own with temporary directories.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STREAMING_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    max_file_size_mb: float = Field(1024, gt=0, description="Largest accepted file.")
    chunk_size_mb: float = Field(8, gt=0, description="Default chunk size (clamped to 2-8 MiB).")
    max_concurrent_uploads: int = Field(5, ge=1, description="Active upload sessions at most.")
    memory_limit_mb: float = Field(500, gt=0, description="Memory budget of the server.")
    session_timeout_hours: float = Field(24, gt=0, description="Age at which a session expires.")
    cleanup_interval_minutes: float = Field(60, gt=0, description="How often expired sessions are swept.")
    upload_dir: Path | None = Field(None, description="Partial files; default <data_dir>/partial.")
    state_dir: Path = Field(Path("./upload_states"), description="One JSON state file per session.")
    data_dir: Path = Field(Path("./data"), description="Stored documents, database and index.")
    database_url: str = Field(
        "", pattern=r"^(|postgres(ql)?://.*)$", description="PostgreSQL for the document metadata, the import queue and the search index, shared by "
        "every replica and importer ('postgresql://user:pass@host:5432/db'). Empty: SQLite in data_dir.")
    database_timeout_seconds: float = Field(
        5, gt=0, description="With database_url: how long a request waits for a PostgreSQL connection (a "
        "server out of reach, or every pooled connection busy) before 503 storage_unavailable.")

    inflight_fraction: float = Field(
        0.25, gt=0, le=1, description="Share of memory_limit_mb that chunk bytes in flight may use."
    )
    backpressure_wait_seconds: float = Field(2.0, ge=0, description="How long a chunk waits for budget.")
    body_idle_timeout_seconds: float = Field(
        30, gt=0, description="A chunk whose body stops arriving for this long is dropped (408) and its chunk freed."
    )
    active_idle_seconds: float = Field(
        600, gt=0, description="A session with no activity for this long stops counting as active."
    )
    progress_interval_seconds: float = Field(0.25, ge=0, description="Least time between progress events.")
    security_reject_kinds: str | None = Field(
        None, description="Comma-separated finding kinds that refuse a file (default: javascript, launch, "
        "xfa, embedded_executable, password_protected)")
    security_flag_kinds: str | None = Field(
        None, description="Comma-separated finding kinds that only flag a file (default: every other kind)")
    stream_scan: bool = Field(True, description="Scan PDF syntax as chunks arrive (off only for benchmarks).")
    prefix_worker: Literal["process", "thread"] = Field(
        "process", description="With digest=child: where it runs, a child process, off the server's GIL, or a "
        "thread of the server (in-process tests)")
    child_idle_seconds: float = Field(
        30, gt=0, description="How long the server's helper processes (the digest child, the inspection's sandbox) "
        "stay up with nothing to do; a server at rest runs neither, and the next upload starts them (~0.2-0.5 s)")
    digest: Literal["child", "inline"] = Field(
        "child", description="How the whole-file SHA-256 and the streaming scan follow the contiguous prefix: "
        "`child` reads the stored bytes back in a process of its own; `inline` hashes and scans the bytes in "
        "hand in the writer threads (reads back only what arrived ahead of a gap)")
    scan_inflate_per_stream_mb: float = Field(16, gt=0, description="Inflated bytes per object stream, streaming.")
    scan_inflate_total_mb: float = Field(128, gt=0, description="Inflated bytes per file, streaming.")
    scan_stream_data_names: bool = Field(
        False, description="Also count (never judge) vocabulary names met inside stream data such as images and "
                           "fonts, as pdfid does: ~70% of the streaming scan's CPU; off, the keyword counts are those "
                           "of object syntax and inflated object streams, and the findings are the same.")
    max_pages: int = Field(10_000, gt=0, description="Most pages a stored PDF may have.")
    max_objects: int = Field(1_000_000, gt=0, description="Most objects a stored PDF may have.")
    max_stream_mb: float = Field(256, gt=0, description="Largest decompressed stream (decompression-bomb guard).")
    max_compression_ratio: int = Field(500, gt=0, description="Largest decoded/encoded ratio above 16 MiB.")
    reject_damaged: bool = Field(False, description="Refuse files qpdf has to repair (else they are flagged damaged).")
    huge_image_mb: float = Field(
        256, gt=0, description="An image declaring more than this unpacked is flagged huge_image (add huge_image "
        "to STREAMING_SECURITY_REJECT_KINDS to refuse it).")
    inspect_memory_mb: float = Field(
        1536, gt=0, description="Memory the deep inspection of one file may use on top of its process's own; "
        "a file that needs more is refused (inspection_limit_exceeded).")
    inspect_timeout_seconds: float = Field(
        120, gt=0, description="Time the deep inspection of one file may take; a file that needs more is "
        "refused (inspection_limit_exceeded).")
    inspect_workers: int = Field(2, ge=1, le=16, description="Deep inspections that run at once.")
    inspect_isolation: Literal["process", "thread"] = Field(
        "process", description="Where the deep inspection runs: a child process under the memory and time "
        "limits, or a thread of the server without them (in-process tests)")
    import_workers: int = Field(1, ge=1, le=8, description="Imports into the document index run at once "
                                "(per importer process).")
    import_lease_seconds: float = Field(
        30, gt=0, description="An importer holds a job this long, renewing it while it works; the job of an "
        "importer that died is taken up by another after it.")
    import_poll_seconds: float = Field(0.25, gt=0, description="How often an idle importer looks for a job.")
    import_watch_seconds: float = Field(
        0.2, gt=0, description="How often the server reads the importers' events (for the WebSocket).")
    import_in_server: bool = Field(
        False, description="Run the import workers inside the server process (in-process tests, one-process "
        "setups): the server then loads LlamaIndex and PDFium. Off: `python -m backend.importer` imports.")
    import_memory_mb: float = Field(
        2048, gt=0, description="Memory reading one PDF's text, or splitting it, may use in its child process.")
    import_timeout_seconds: float = Field(
        300, gt=0, description="Time reading one PDF's text, or splitting it, may take in its child process.")
    index_chunk_tokens: int = Field(512, ge=64, description="Tokens per indexed node (SentenceSplitter).")
    embeddings: bool = Field(True, description="The importer embeds nodes when the [embeddings] extra is "
                             "installed (documents with auto_build_index, or all with embed_all).")
    query_embeddings: bool = Field(
        False, description="Fuse vector similarity into search: the server embeds each query, so it loads the "
        "embedding model (LlamaIndex, torch) at the first search. Off: search ranks by keyword only.")
    embed_all: bool = Field(False, description="Embed every document (else only uploads with auto_build_index).")
    host: str = "127.0.0.1"
    port: int = 8000

    # -- the security perimeter (backend/services/auth.py, ratelimit.py, quotas; api/body_limit.py) --
    api_keys: SecretStr | None = Field(
        None, description="API keys and their owners, 'key1:alice,key2:bob'. With keys, every API endpoint and "
        "the WebSocket want 'Authorization: Bearer <key>'; without, one owner and loopback only.")
    api_keys_file: Path | None = Field(None, description="More keys, one 'key:owner' a line ('#' comments).")
    allow_public_without_keys: bool = Field(
        False, description="Serve a non-loopback address with no API keys (anyone who reaches it is the owner).")
    rate_limit_per_minute: int = Field(60, ge=0, description="Sessions an owner may open per minute (0: no limit).")
    rate_limit_burst: int = Field(10, ge=1, description="Sessions an owner may open at once, within that rate.")
    ip_rate_limit_per_minute: int = Field(60, ge=0, description="Sessions one client IP may open per minute (0: off).")
    ip_rate_limit_burst: int = Field(10, ge=1, description="Sessions one client IP may open at once.")
    max_open_sessions_per_owner: int = Field(20, ge=1, description="Unfinished sessions an owner may hold.")
    max_pending_mb_per_owner: float = Field(
        10240, gt=0, description="Total size of an owner's unfinished uploads (disk they reserve).")
    max_request_body_kb: float = Field(
        64, gt=0, description="Largest request body outside the chunk endpoint (whose cap is 8 MiB + 64 KiB).")
    cors_origins: str | None = Field(
        None, description="Comma-separated origins allowed to call the API from a browser ('*' for any).")
    ready_min_free_mb: float = Field(256, ge=0, description="/ready fails below this much free disk space.")

    # -- several replicas (backend/coordination.py) --
    redis_url: str = Field(
        "", description="Redis for what replicas share: rate limits, admission counters, upload locks and the "
        "progress bus ('redis://host:6379/0'). Empty: all of it stays in this process.")
    redis_prefix: str = Field("pdfup", min_length=1, description="Prefix of every Redis key and channel.")

    # -- bytes in an S3-compatible object store (backend/storage/s3/) --
    storage_backend: Literal["local", "s3"] = Field(
        "local", description="Where upload bytes and documents live: `local` disk (upload_dir, data_dir) or an "
        "S3-compatible object store (each upload one multipart upload; documents content-addressed).")
    s3_endpoint_url: str = Field("", description="The S3 endpoint ('http://127.0.0.1:8333'); empty: AWS's own.")
    s3_bucket: str = Field("", description="The bucket (it must exist); required with storage_backend=s3.")
    s3_access_key_id: str = Field("", description="S3 access key; empty: boto3's usual sources (env, profile, role).")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key (with s3_access_key_id).")
    s3_region: str = Field("us-east-1", min_length=1, description="S3 region (signing).")
    s3_prefix: str = Field("", pattern=r"^([A-Za-z0-9._-]+/)*$", description="Key prefix of everything the "
                           "server stores in the bucket ('pdfup/'), so that a bucket can be shared.")
    log_format: Literal["json", "text"] = Field("json", description="One JSON object per log line, or plain text.")

    @model_validator(mode="after")
    def _resolve_dirs(self) -> Settings:
        if self.upload_dir is None:
            self.upload_dir = self.data_dir / "partial"
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("STREAMING_STORAGE_BACKEND=s3 needs STREAMING_S3_BUCKET")
        return self

    @property
    def partial_dir(self) -> Path:
        assert self.upload_dir is not None
        return self.upload_dir

    @property
    def max_file_size(self) -> int:
        return int(self.max_file_size_mb * MIB)

    @property
    def default_chunk_size(self) -> int:
        return int(self.chunk_size_mb * MIB)

    @property
    def min_chunk_size(self) -> int:
        """The least chunk the server chooses for files of 10 MiB and more: S3's least part
        size in S3 mode (a whole chunk is then one part), else 2 MiB."""
        return 5 * MIB if self.storage_backend == "s3" else 2 * MIB

    @property
    def inflight_budget(self) -> int:
        """Bytes of chunk data the server may hold in memory at once, all uploads together."""
        return max(4 * MIB, int(self.memory_limit_mb * MIB * self.inflight_fraction))

    @staticmethod
    def _kinds(value: str | None) -> list[str] | None:
        return None if value is None else [k.strip() for k in value.split(",") if k.strip()]

    @property
    def security_reject_list(self) -> list[str] | None:
        return self._kinds(self.security_reject_kinds)

    @property
    def security_flag_list(self) -> list[str] | None:
        return self._kinds(self.security_flag_kinds)

    @property
    def session_timeout_seconds(self) -> float:
        return self.session_timeout_hours * 3600

    @property
    def max_pending_bytes_per_owner(self) -> int:
        return int(self.max_pending_mb_per_owner * MIB)

    @property
    def max_request_body(self) -> int:
        return int(self.max_request_body_kb * 1024)

    @property
    def cors_origin_list(self) -> list[str]:
        return self._kinds(self.cors_origins) or []


@lru_cache
def get_settings() -> Settings:
    return Settings()


def temp_settings(root: Path | None = None, **overrides: object) -> Settings:
    """Settings rooted in a fresh temporary directory (tests and benchmarks)."""
    base = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="pdfup-"))
    values: dict[str, object] = {
        "state_dir": base / "upload_states",
        "data_dir": base / "data",
        "upload_dir": base / "partial",
        "prefix_worker": "thread",  # in-process apps by the hundred: no child process each
        "inspect_isolation": "thread",
        "import_in_server": True,  # an in-process app imports too: no importer process to start
        "import_poll_seconds": 0.02,
        "import_watch_seconds": 0.02,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
