/**
 * `@pdf-upload/client`: the typed client for the resumable chunked PDF upload server (the
 * wire contract is shared/API.md). No framework, no dependencies: `fetch`,
 * `XMLHttpRequest` (for upload progress, in a browser), `WebSocket`, `SubtleCrypto`.
 *
 *   const client = new UploadClient();
 *   const socket = client.connect();              // /ws/{client_id}: progress events
 *   const upload = client.upload(file);           // initiate or resume, then chunks
 *   upload.addEventListener("progress", ...);     // bytes sent, within chunks too
 *   upload.addEventListener("wait", ...);         // a retry pending: why, until when
 *   const done = await upload.start();            // -> {document, duplicate}
 *
 * Errors are {@link ApiError}s carrying the server's `error` code.
 */

export const API_PREFIX = "/api/documents/streaming";
export const DEFAULT_CONCURRENCY = 3;
export const DEFAULT_MAX_RETRIES = 8; // about a minute of backoff: a server restart or a short outage
export const FINGERPRINT_SAMPLE_BYTES = 1 << 20;

// ---------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------

export interface InitiateRequest {
  filename: string;
  file_size: number;
  chunk_size?: number;
  client_id?: string;
  title?: string;
  check_duplicates?: boolean;
  auto_build_index?: boolean;
  expected_hash?: string;
}

export interface SessionInfo {
  session_id: string;
  upload_url: string;
  chunk_size: number;
  total_chunks: number;
  expires_at: string;
  websocket_room: string;
  client_id: string;
  filename?: string;
  file_size?: number;
  status?: string;
}

export interface ResumeInfo extends SessionInfo {
  uploaded_chunks: number[];
  missing_chunks: number[];
  next_chunk_id: number | null;
  progress_percentage: number;
}

export interface ChunkResult {
  success: boolean;
  chunk_id: number;
  next_chunk_id: number | null;
  upload_complete: boolean;
  message: string;
}

export interface DocumentInfo {
  id: number;
  title: string;
  filename: string;
  file_size: number;
  is_file_available: boolean;
  created_at: string;
  sha256?: string;
  page_count?: number | null;
  pdf_version?: string | null;
  status?: string;
  security?: { verdict?: string; findings?: Finding[]; encrypted?: boolean; damaged?: boolean; uris?: string[];
               [key: string]: unknown };
  index_status?: string;
  index_error?: string | null;
  original_filename?: string | null;
}

export interface CompleteResult {
  document: DocumentInfo;
  duplicate: boolean;
}

export interface ResumableSession {
  session_id: string;
  filename: string;
  total_size: number;
  uploaded_chunks: number;
  total_chunks: number;
  progress_percentage: number;
  created_at: string;
  age_hours: number;
}

export interface SearchHit {
  document_id: number;
  page?: number;
  score?: number;
  text?: string;
  title?: string;
  [key: string]: unknown;
}

export interface Finding {
  kind: string;
  detail: string;
  offset?: number | null;
  source?: string;
}

export type UploadStatus = "uploading" | "processing" | "importing" | "completed" | "failed" | "cancelled";

export interface UploadProgressEvent {
  type: "upload_progress";
  data: {
    session_id: string;
    status: UploadStatus;
    uploaded_bytes: number;
    total_bytes: number;
    uploaded_chunks: number;
    total_chunks: number;
    progress_percentage: number;
    upload_speed_bps: number;
    estimated_time_remaining: number | null;
    current_chunk: number;
    message: string;
  };
}

export interface ChunkProgressEvent {
  type: "chunk_progress";
  session_id: string;
  chunk_id: number;
  chunks_uploaded: number;
  total_chunks: number;
  bytes_uploaded: number;
  total_bytes: number;
  progress_percentage: number;
  upload_speed_bps: number;
  eta_seconds: number | null;
}

export interface UploadStatusEvent {
  type: "upload_status";
  session_id: string;
  status: UploadStatus;
  message: string;
  error?: string;
  findings?: Finding[];
  [key: string]: unknown;
}

export interface MemoryWarningEvent {
  type: "memory_warning";
  data: { memory_usage_mb: number; memory_limit_mb: number; warning: string };
}

export type ServerEvent = UploadProgressEvent | ChunkProgressEvent | UploadStatusEvent | MemoryWarningEvent;

/** The session an event belongs to (`data.session_id` or flat `session_id`), if any. */
export function eventSessionId(event: ServerEvent): string | null {
  if (event.type === "upload_progress") return event.data.session_id;
  if (event.type === "chunk_progress" || event.type === "upload_status") return event.session_id;
  return null;
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/** A refused request: `code` is the server's stable `error` code (or a client-side one:
 * `network_error`, `aborted`, `bad_response`). */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly retryAfterMs: number | null;

  constructor(code: string, message: string, status = 0, body: Record<string, unknown> = {},
              retryAfterMs: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.body = body;
    this.retryAfterMs = retryAfterMs;
  }

  /** Security findings sent with a `security_rejected` refusal. */
  get findings(): Finding[] {
    const f = this.body["findings"];
    return Array.isArray(f) ? (f as Finding[]) : [];
  }

  /** Worth another try: throttled, busy, a gateway hiccup or a network failure. */
  get retryable(): boolean {
    return this.code === "network_error" || RETRYABLE_STATUS.has(this.status);
  }
}

const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

/** Refusals that mean "no room right now" (an admission cap, memory backpressure): the
 * server names the wait in `Retry-After`, and waiting is the normal way on. */
export const ADMISSION_CODES = new Set(["too_many_uploads", "server_busy"]);

/** A wait before another try: what failed, and until when (`Date.now()` milliseconds). */
export interface RetryWait {
  code: string;
  status: number;
  message: string;
  /** 1 for the first retry. */
  attempt: number;
  delayMs: number;
  until: number;
  /** The delay is the server's own `Retry-After`. */
  serverSaid: boolean;
}

export interface RetryOptions {
  /** Tries after the first (the client's `maxRetries` by default). */
  retries?: number;
  /** Told before each wait. */
  onRetry?: (wait: RetryWait) => void;
  /** Admission refusals ({@link ADMISSION_CODES}) are waited out for as long as the server
   * keeps saying so, without using up `retries` (the user sees why, and may cancel). */
  waitForRoom?: boolean;
}

/** Upload progress of one request: bytes of the request body sent so far, of `total`. */
export type SendProgress = (loaded: number, total: number) => void;

// ---------------------------------------------------------------------------------------
// Pure helpers (unit-tested under node)
// ---------------------------------------------------------------------------------------

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; null when absent or bad. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (value == null) return null;
  const text = value.trim();
  if (text === "") return null;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const when = Date.parse(text);
  if (Number.isNaN(when)) return null;
  return Math.max(0, when - now);
}

export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
  /** The longest `Retry-After` obeyed as given (5 min by default); longer hints are cut to it. */
  maxRetryAfterMs?: number;
  /** A number in [0, 1): the jitter source (Math.random by default). */
  random?: () => number;
}

/**
 * How long to wait before retry number `attempt` (0-based). The server's `Retry-After`
 * wins when it is given: it knows when it will have room, so the client waits exactly that
 * long, neither less (refused again) nor more (a slot left idle); only hints beyond
 * `maxRetryAfterMs` are cut. Otherwise exponential backoff with "equal jitter":
 * base * 2^attempt, half of it random, capped at `maxMs`.
 */
export function backoffDelay(attempt: number, retryAfterMs: number | null, opts: BackoffOptions = {}): number {
  const base = opts.baseMs ?? 500;
  const max = opts.maxMs ?? 30_000;
  const random = opts.random ?? Math.random;
  if (retryAfterMs != null && retryAfterMs >= 0) return Math.min(retryAfterMs, opts.maxRetryAfterMs ?? 300_000);
  const exp = Math.min(max, base * 2 ** Math.max(0, attempt));
  return Math.round(exp / 2 + (exp / 2) * random());
}

/**
 * Upload speed as a moving average over the last `windowMs`, fed with a count of bytes
 * put on the wire that only grows (`add`). Nothing before the window counts, so the figure
 * follows the network within a few seconds; and since `rate(now)` divides by the time up to
 * `now`, it falls towards zero when nothing moves instead of showing the last good figure.
 * `rate` is null until `minSpanMs` of samples exist (a first figure from 50 ms of data
 * would be noise).
 */
export class SpeedMeter {
  private samples: Array<[number, number]> = [];
  private changedAt: number | null = null;

  constructor(readonly windowMs = 5000, readonly minSpanMs = 1000) {}

  add(bytes: number, now: number = Date.now()): void {
    const last = this.samples[this.samples.length - 1];
    if (last && bytes < last[1]) return; // a count that only grows: ignore a stray smaller one
    if (!last || bytes > last[1]) this.changedAt = now;
    this.samples.push([now, bytes]);
    this.prune(now);
  }

  /** Bytes per second over the window ending `now`; null without enough samples. */
  rate(now: number = Date.now()): number | null {
    this.prune(now);
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last) return null;
    const span = Math.min(this.windowMs, now - first[0]);
    if (span < this.minSpanMs) return null;
    return ((last[1] - first[1]) / span) * 1000;
  }

  /** Milliseconds since the count last grew (null before the first sample). */
  idleMs(now: number = Date.now()): number | null {
    return this.changedAt === null ? null : Math.max(0, now - this.changedAt);
  }

  /** Forget the past (after a pause: the time paused is not slowness). */
  reset(): void {
    this.samples = [];
    this.changedAt = null;
  }

  /** Drop samples older than the window, but keep the newest of them: the count at the
   * window's start (the count is a step function between samples). */
  private prune(now: number): void {
    const start = now - this.windowMs;
    while (this.samples.length > 1 && this.samples[1]![0] <= start) this.samples.shift();
  }
}

/** Seconds until the rest is sent at `bytesPerSecond`; null when there is no speed. */
export function timeLeft(remainingBytes: number, bytesPerSecond: number | null): number | null {
  if (bytesPerSecond === null || bytesPerSecond <= 0) return null;
  return Math.max(0, remainingBytes) / bytesPerSecond;
}

/** Byte range [start, end) of chunk `chunkId`; every chunk is `chunkSize` long but the last. */
export function chunkRange(chunkId: number, chunkSize: number, fileSize: number): [number, number] {
  const start = chunkId * chunkSize;
  if (chunkId < 0 || start >= fileSize) throw new RangeError(`chunk ${chunkId} is outside the file`);
  return [start, Math.min(fileSize, start + chunkSize)];
}

export function totalChunks(fileSize: number, chunkSize: number): number {
  return Math.ceil(fileSize / chunkSize);
}

export function toHex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(data: ArrayBuffer | Uint8Array): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", data as BufferSource));
}

/** What a file is known by across page loads. */
export interface FileLike {
  name: string;
  size: number;
  lastModified: number;
  slice(start?: number, end?: number): Blob;
}

/**
 * A file's identity across page reloads: name, size, mtime and the SHA-256 of its first
 * MiB (cheap, yet a different file with the same name and size gets another key).
 */
export async function fingerprint(file: FileLike): Promise<string> {
  const head = await file.slice(0, FINGERPRINT_SAMPLE_BYTES).arrayBuffer();
  return fingerprintOf(file.name, file.size, file.lastModified, await sha256Hex(head));
}

export function fingerprintOf(name: string, size: number, lastModified: number, headSha256: string): string {
  return `v1:${encodeURIComponent(name)}:${size}:${lastModified}:${headSha256}`;
}

/** Whether the bytes start like a PDF (`%PDF-`, maybe after a little junk, as readers allow). */
export function looksLikePdf(head: Uint8Array): boolean {
  const text = String.fromCharCode(...head.subarray(0, 1024));
  return text.includes("%PDF-");
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ApiError("aborted", "aborted"));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new ApiError("aborted", "aborted"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------------------
// Local memory of sessions (localStorage)
// ---------------------------------------------------------------------------------------

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
  readonly length: number;
  key(index: number): string | null;
}

export interface SavedSession {
  session_id: string;
  chunk_size: number;
  total_chunks: number;
  filename: string;
  file_size: number;
  saved_at: number;
}

/** fingerprint -> session, so that a reloaded page can resume the same file. */
export class SessionStore {
  constructor(private readonly storage: StorageLike | null, private readonly prefix = "pdf-upload:session:") {}

  get(fp: string): SavedSession | null {
    const raw = this.safe(() => this.storage?.getItem(this.prefix + fp) ?? null);
    if (!raw) return null;
    try {
      const rec = JSON.parse(raw) as SavedSession;
      return typeof rec.session_id === "string" && rec.chunk_size > 0 ? rec : null;
    } catch {
      return null;
    }
  }

  set(fp: string, rec: SavedSession): void {
    this.safe(() => this.storage?.setItem(this.prefix + fp, JSON.stringify(rec)));
  }

  delete(fp: string): void {
    this.safe(() => this.storage?.removeItem(this.prefix + fp));
  }

  /** Every remembered session, keyed by fingerprint. */
  all(): Map<string, SavedSession> {
    const out = new Map<string, SavedSession>();
    const n = this.safe(() => this.storage?.length ?? 0) ?? 0;
    for (let i = 0; i < n; i++) {
      const key = this.safe(() => this.storage?.key(i) ?? null);
      if (!key || !key.startsWith(this.prefix)) continue;
      const fp = key.slice(this.prefix.length);
      const rec = this.get(fp);
      if (rec) out.set(fp, rec);
    }
    return out;
  }

  /** Forget a session by id (e.g. cancelled from the resumable list). */
  deleteSession(sessionId: string): void {
    for (const [fp, rec] of this.all()) if (rec.session_id === sessionId) this.delete(fp);
  }

  private safe<T>(fn: () => T): T | undefined {
    try {
      return fn(); // storage may be disabled (privacy mode): then nothing is remembered
    } catch {
      return undefined;
    }
  }
}

// ---------------------------------------------------------------------------------------
// The HTTP client
// ---------------------------------------------------------------------------------------

export interface ClientOptions {
  /** Origin of the server ("" = same origin). */
  baseUrl?: string;
  /** The id this tab gives /initiate, /resume and /ws/{client_id}; random by default. */
  clientId?: string;
  fetch?: typeof fetch;
  storage?: StorageLike | null;
  /** Chunks in flight per upload. */
  concurrency?: number;
  /** Retries of one request (429/503 with Retry-After, 502/504, network errors). */
  maxRetries?: number;
  backoff?: BackoffOptions;
  /** Ask the server for this chunk size (it clamps it to 2-8 MiB). */
  chunkSize?: number;
  /** An API key: sent as `Authorization: Bearer` on requests, as `?token=` on the WebSocket. */
  apiKey?: string;
  /** Send chunks with XMLHttpRequest, for byte-level progress (default: in a browser, unless
   * `fetch` is given). */
  xhr?: boolean;
}

export function newClientId(): string {
  const rand = typeof crypto.randomUUID === "function"
    ? crypto.randomUUID().replace(/-/g, "").slice(0, 16)
    : Math.random().toString(36).slice(2, 14);
  return `web_${rand}`;
}

export class UploadClient {
  readonly baseUrl: string;
  readonly clientId: string;
  readonly store: SessionStore;
  readonly concurrency: number;
  readonly maxRetries: number;
  readonly backoff: BackoffOptions;
  readonly chunkSize: number | undefined;
  readonly apiKey: string | undefined;
  /** Chunks go through XMLHttpRequest (for its upload progress events). */
  readonly useXhr: boolean;
  private readonly fetchImpl: typeof fetch;

  constructor(opts: ClientOptions = {}) {
    this.baseUrl = (opts.baseUrl ?? "").replace(/\/$/, "");
    this.clientId = opts.clientId ?? newClientId();
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
    const storage = opts.storage !== undefined ? opts.storage : defaultStorage();
    this.store = new SessionStore(storage);
    this.concurrency = Math.max(1, opts.concurrency ?? DEFAULT_CONCURRENCY);
    this.maxRetries = Math.max(0, opts.maxRetries ?? DEFAULT_MAX_RETRIES);
    this.backoff = opts.backoff ?? {};
    this.chunkSize = opts.chunkSize;
    this.apiKey = opts.apiKey || undefined;
    this.useXhr = opts.xhr ?? (opts.fetch === undefined && typeof XMLHttpRequest !== "undefined");
  }

  // -- endpoints ------------------------------------------------------------------------

  initiate(req: InitiateRequest, signal?: AbortSignal, retry: RetryOptions = {}): Promise<SessionInfo> {
    return this.json<SessionInfo>("POST", `${API_PREFIX}/initiate`, { client_id: this.clientId, ...req }, signal,
                                  retry);
  }

  resume(sessionId: string, lastChunkId?: number, signal?: AbortSignal, retry: RetryOptions = {}): Promise<ResumeInfo> {
    const body: Record<string, unknown> = { session_id: sessionId, client_id: this.clientId };
    if (lastChunkId !== undefined) body["last_chunk_id"] = lastChunkId;
    return this.json<ResumeInfo>("POST", `${API_PREFIX}/resume`, body, signal, retry);
  }

  complete(sessionId: string, signal?: AbortSignal, retry: RetryOptions = {}): Promise<CompleteResult> {
    return this.json<CompleteResult>("POST", `${API_PREFIX}/complete/${encodeURIComponent(sessionId)}`, {}, signal,
                                     retry);
  }

  cancel(sessionId: string, reason?: string): Promise<{ success: boolean; session_id: string; status: string }> {
    return this.json("POST", `${API_PREFIX}/cancel/${encodeURIComponent(sessionId)}`, reason ? { reason } : {});
  }

  resumable(): Promise<ResumableSession[]> {
    return this.json<ResumableSession[]>("GET", `${API_PREFIX}/resumable`);
  }

  /** The caller's documents, newest first: `limit` of them from `offset`. */
  documents(limit?: number, offset?: number): Promise<DocumentInfo[]> {
    const query = new URLSearchParams();
    if (limit !== undefined) query.set("limit", String(limit));
    if (offset !== undefined) query.set("offset", String(offset));
    const qs = query.toString();
    return this.json<DocumentInfo[]>("GET", `/api/documents${qs ? `?${qs}` : ""}`);
  }

  document(id: number, signal?: AbortSignal): Promise<DocumentInfo> {
    return this.json<DocumentInfo>("GET", `/api/documents/${id}`, undefined, signal);
  }

  /** Delete a stored document (its file, its search passages). */
  deleteDocument(id: number): Promise<{ success: boolean; id: number; status: string }> {
    return this.json("DELETE", `/api/documents/${id}`, undefined, undefined, { retries: 0 });
  }

  documentUrl(id: number): string {
    return `${this.baseUrl}/api/documents/${id}/file`;
  }

  /** The stored PDF as a Blob (a plain link cannot send the API key). */
  async download(id: number, signal?: AbortSignal): Promise<Blob> {
    const res = await this.fetchImpl(this.documentUrl(id), { headers: this.authHeaders(), signal: signal ?? null });
    if (!res.ok) throw new ApiError(res.status === 401 ? "unauthorized" : `http_${res.status}`, res.statusText, res.status);
    return res.blob();
  }

  /** Full-text search, over every document or within `documentId`; throws
   * ApiError("search_unavailable") while the server has none. */
  async search(q: string, topK = 10, signal?: AbortSignal, documentId?: number): Promise<SearchHit[]> {
    const query = new URLSearchParams({ q, top_k: String(topK) });
    if (documentId !== undefined) query.set("document_id", String(documentId));
    try {
      const res = await this.json<unknown>("GET", `/api/documents/search?${query}`, undefined, signal, { retries: 0 });
      if (Array.isArray(res)) return res as SearchHit[];
      const obj = res as Record<string, unknown>;
      for (const key of ["hits", "results", "items"]) if (Array.isArray(obj[key])) return obj[key] as SearchHit[];
      return [];
    } catch (err) {
      // No route yet: 404/405, or the `{doc_id}` route refusing "search" as an id (422).
      if (err instanceof ApiError && (err.status === 404 || err.status === 405 ||
          (err.status === 422 && err.code === "invalid_request"))) {
        throw new ApiError("search_unavailable", "search not available yet", err.status, err.body);
      }
      throw err;
    }
  }

  /**
   * Send one chunk (its SHA-256 as `checksum`), retrying what is worth retrying.
   * `onProgress` hears the request body's bytes as they leave (XMLHttpRequest upload
   * events in a browser); each retry starts again from 0, after `retry.onRetry`.
   */
  async sendChunk(sessionId: string, file: Blob, chunkId: number, chunkSize: number,
                  signal?: AbortSignal, onProgress?: SendProgress, retry: RetryOptions = {}): Promise<ChunkResult> {
    const [start, end] = chunkRange(chunkId, chunkSize, file.size);
    const bytes = await file.slice(start, end).arrayBuffer();
    const checksum = await sha256Hex(bytes);
    const blob = new Blob([bytes], { type: "application/octet-stream" });
    const url = `${API_PREFIX}/chunk/${encodeURIComponent(sessionId)}`;
    return this.withRetries(async () => {
      const form = new FormData(); // field order: the metadata before `file`
      form.append("chunk_id", String(chunkId));
      form.append("chunk_offset", String(start));
      form.append("is_final", String(end >= file.size));
      form.append("checksum", checksum);
      form.append("file", blob, `chunk-${chunkId}`);
      return this.post<ChunkResult>(url, form, signal, onProgress);
    }, signal, retry);
  }

  // -- uploads and events ------------------------------------------------------------------

  /** An upload of `file`: initiates, or resumes the session remembered for this file. */
  upload(file: File | FileLike & Blob, opts: UploadOptions = {}): Upload {
    return new Upload(this, file, opts);
  }

  /** Opens `/ws/{client_id}` (and keeps it open, reconnecting) for progress events. */
  connect(): ProgressSocket {
    return new ProgressSocket(this.wsUrl());
  }

  wsUrl(): string {
    const origin = this.baseUrl || (typeof location !== "undefined" ? location.origin : "http://localhost");
    const token = this.apiKey ? `?token=${encodeURIComponent(this.apiKey)}` : "";
    return `${origin.replace(/^http/, "ws")}/ws/${encodeURIComponent(this.clientId)}${token}`;
  }

  authHeaders(): Record<string, string> {
    return this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
  }

  // -- plumbing -------------------------------------------------------------------------

  /** JSON request with retries (for 429/503 this honours Retry-After). */
  json<T>(method: string, path: string, body?: unknown, signal?: AbortSignal, retry: RetryOptions = {}): Promise<T> {
    return this.withRetries(() => this.request<T>(method, path,
      body === undefined ? undefined : JSON.stringify(body), signal), signal, retry);
  }

  async withRetries<T>(fn: () => Promise<T>, signal?: AbortSignal, retry: RetryOptions = {}): Promise<T> {
    const retries = retry.retries ?? this.maxRetries;
    let counted = 0; // tries that count against `retries` (waits for room do not)
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof ApiError) || !err.retryable || signal?.aborted) throw err;
        const forRoom = retry.waitForRoom === true && ADMISSION_CODES.has(err.code);
        if (!forRoom && counted++ >= retries) throw err;
        const delayMs = backoffDelay(attempt, err.retryAfterMs, this.backoff);
        retry.onRetry?.({ code: err.code, status: err.status, message: err.message, attempt: attempt + 1, delayMs,
                          until: Date.now() + delayMs, serverSaid: err.retryAfterMs != null });
        await sleep(delayMs, signal);
      }
    }
  }

  async request<T>(method: string, path: string, body?: BodyInit, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json", ...this.authHeaders() };
    if (typeof body === "string") headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await this.fetchImpl(this.baseUrl + path, { method, body: body ?? null, headers, signal: signal ?? null });
    } catch (err) {
      if (signal?.aborted) throw new ApiError("aborted", "the request was cancelled");
      throw new ApiError("network_error", `network error: ${(err as Error).message ?? String(err)}`);
    }
    const text = await res.text().catch(() => "");
    return answer<T>(method, path, res.status, res.statusText, text, res.headers.get("Retry-After"));
  }

  /**
   * POST a form, reporting the body's bytes as they are sent. `fetch` has no upload
   * progress, so in a browser (and unless a `fetch` was given) this is an XMLHttpRequest;
   * elsewhere it is `request` and progress is heard once, at the end.
   */
  post<T>(path: string, form: FormData, signal?: AbortSignal, onProgress?: SendProgress): Promise<T> {
    if (!this.useXhr) {
      return this.request<T>("POST", path, form, signal).then((res) => {
        onProgress?.(1, 1);
        return res;
      });
    }
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) return reject(new ApiError("aborted", "the request was cancelled"));
      const xhr = new XMLHttpRequest();
      const onAbort = (): void => xhr.abort();
      const settle = (fn: () => void): void => {
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      xhr.open("POST", this.baseUrl + path);
      const headers: Record<string, string> = { accept: "application/json", ...this.authHeaders() };
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      if (onProgress) xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : 0);
      xhr.onload = () => settle(() => {
        try {
          resolve(answer<T>("POST", path, xhr.status, xhr.statusText, xhr.responseText,
                            xhr.getResponseHeader("Retry-After")));
        } catch (err) {
          reject(err);
        }
      });
      xhr.onerror = () => settle(() => reject(new ApiError("network_error", "network error: no answer from the server")));
      xhr.ontimeout = xhr.onerror;
      xhr.onabort = () => settle(() => reject(new ApiError("aborted", "the request was cancelled")));
      signal?.addEventListener("abort", onAbort, { once: true });
      xhr.send(form);
    });
  }
}

/** A response turned into its JSON body, or into the ApiError its envelope describes. */
function answer<T>(method: string, path: string, status: number, statusText: string, text: string,
                   retryAfterHeader: string | null): T {
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (status >= 200 && status < 300) {
    if (parsed === null && text) throw new ApiError("bad_response", `unexpected response to ${method} ${path}`, status);
    return parsed as T;
  }
  const env = (parsed && typeof parsed === "object" ? parsed : {}) as Record<string, unknown>;
  const code = typeof env["error"] === "string" ? env["error"] : `http_${status}`;
  const message = typeof env["message"] === "string" ? env["message"] : `${status} ${statusText}`;
  let retryAfter = parseRetryAfter(retryAfterHeader);
  if (retryAfter === null && typeof env["retry_after"] === "number") retryAfter = env["retry_after"] * 1000;
  throw new ApiError(code, message, status, env, retryAfter);
}

function defaultStorage(): StorageLike | null {
  try {
    return typeof localStorage !== "undefined" ? localStorage : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// One upload
// ---------------------------------------------------------------------------------------

export type UploadState =
  | "idle" | "preparing" | "uploading" | "paused" | "completing" | "completed" | "failed" | "cancelled";

export interface UploadOptions {
  title?: string;
  checkDuplicates?: boolean;
  autoBuildIndex?: boolean;
  /** Resume the remembered session for this file (default true). */
  resume?: boolean;
}

export interface UploadSnapshot {
  state: UploadState;
  sessionId: string | null;
  totalChunks: number;
  chunkSize: number;
  /** Chunks the server holds, as far as this page knows (resumed ones included). */
  chunksDone: number;
  /** Chunk requests this page sent successfully since it started. */
  chunksSent: number;
  /** Bytes of the acknowledged chunks. */
  bytesDone: number;
  /** `bytesDone` plus what has left for the chunks in flight: the progress to show. */
  bytesUploaded: number;
  /** Every byte put on the wire since the start, retries included; only grows (for speed). */
  bytesTransferred: number;
  resumed: boolean;
  /** Why nothing is sent right now and until when, if a retry is pending. */
  waiting: RetryWait | null;
  error: ApiError | null;
  result: CompleteResult | null;
}

/** What an Upload dispatches; every event's `detail` is the snapshot. */
export type UploadEventType = "state" | "chunk" | "progress" | "wait";

/**
 * An upload controller. Events (an EventTarget, detail: the snapshot): "state", "chunk"
 * (a chunk acknowledged), "progress" (bytes sent within chunks, as the browser reports
 * them), "wait" (a retry is pending, or no longer: `waiting`). `start()` resolves with the
 * stored document or rejects with an ApiError.
 */
export class Upload extends EventTarget {
  readonly file: Blob & FileLike;
  fingerprint = "";
  state: UploadState = "idle";
  sessionId: string | null = null;
  chunkSize = 0;
  totalChunks = 0;
  resumed = false;
  chunksSent = 0;
  bytesTransferred = 0;
  error: ApiError | null = null;
  result: CompleteResult | null = null;

  private readonly done = new Set<number>();
  /** chunk id -> bytes of it sent by the request in flight. */
  private readonly inflight = new Map<number, number>();
  /** Pending retries, by who waits (a chunk id, or -1 for the session's own requests). */
  private readonly waits = new Map<number, RetryWait>();
  private readonly abort = new AbortController();
  private pauseGate: Promise<void> | null = null;
  private releasePause: (() => void) | null = null;
  private running: Promise<CompleteResult> | null = null;

  constructor(private readonly client: UploadClient, file: Blob & FileLike, private readonly opts: UploadOptions = {}) {
    super();
    this.file = file;
  }

  get chunksDone(): number {
    return this.done.size;
  }

  get bytesDone(): number {
    let bytes = 0;
    for (const id of this.done) bytes += this.chunkLength(id);
    return bytes;
  }

  get bytesUploaded(): number {
    let bytes = this.bytesDone;
    for (const [id, sent] of this.inflight) if (!this.done.has(id)) bytes += sent;
    return Math.min(this.file.size, bytes);
  }

  /** The pending retry that ends first, if any. */
  get waiting(): RetryWait | null {
    let first: RetryWait | null = null;
    for (const w of this.waits.values()) if (first === null || w.until < first.until) first = w;
    return first;
  }

  snapshot(): UploadSnapshot {
    return {
      state: this.state, sessionId: this.sessionId, totalChunks: this.totalChunks, chunkSize: this.chunkSize,
      chunksDone: this.chunksDone, chunksSent: this.chunksSent, bytesDone: this.bytesDone,
      bytesUploaded: this.bytesUploaded, bytesTransferred: this.bytesTransferred, resumed: this.resumed,
      waiting: this.waiting, error: this.error, result: this.result,
    };
  }

  start(): Promise<CompleteResult> {
    this.running ??= this.run();
    return this.running;
  }

  /** Stop scheduling chunks; those in flight finish. */
  pause(): void {
    if (this.state !== "uploading" && this.state !== "preparing") return;
    this.pauseGate = new Promise((resolve) => (this.releasePause = resolve));
    this.setState("paused");
  }

  resume(): void {
    if (this.state !== "paused") return;
    this.releasePause?.();
    this.pauseGate = null;
    this.releasePause = null;
    this.setState("uploading");
  }

  /** Abort what is in flight, drop the server's partial file and the local memory. */
  async cancel(reason = "cancelled by the user"): Promise<void> {
    if (this.state === "completed" || this.state === "cancelled") return;
    this.abort.abort();
    this.releasePause?.();
    this.waits.clear();
    this.setState("cancelled");
    if (this.fingerprint) this.client.store.delete(this.fingerprint);
    if (this.sessionId) {
      try {
        await this.client.cancel(this.sessionId, reason);
      } catch {
        /* already gone: nothing to cancel */
      }
    }
  }

  private async run(): Promise<CompleteResult> {
    const signal = this.abort.signal;
    try {
      this.setState("preparing");
      this.fingerprint = await fingerprint(this.file);
      await this.openSession(signal);
      this.setState(this.pauseGate ? "paused" : "uploading");
      await this.sendMissing(signal);
      this.throwIfCancelled();
      this.setState("completing");
      const result = await this.client.complete(this.sessionId!, signal, this.retryFor(SESSION_WAITER));
      this.settled(SESSION_WAITER);
      this.result = result;
      this.client.store.delete(this.fingerprint);
      this.setState("completed");
      return result;
    } catch (err) {
      this.waits.clear();
      const error = err instanceof ApiError ? err : new ApiError("client_error", (err as Error)?.message ?? String(err));
      if (this.state === "cancelled" || error.code === "aborted") throw new ApiError("cancelled", "upload cancelled");
      this.error = error;
      if (!KEEP_SESSION_ON.has(error.code) && this.fingerprint) this.client.store.delete(this.fingerprint);
      this.setState("failed");
      throw error;
    }
  }

  private async openSession(signal: AbortSignal): Promise<void> {
    const saved = this.opts.resume === false ? null : this.client.store.get(this.fingerprint);
    if (saved) {
      try {
        const info = await this.client.resume(saved.session_id, undefined, signal,
                                              { ...this.retryFor(SESSION_WAITER), waitForRoom: true });
        this.settled(SESSION_WAITER);
        for (const id of info.uploaded_chunks) this.done.add(id);
        this.resumed = true;
        this.adopt(info); // its events start the progress at the bytes already on the server
        return;
      } catch (err) {
        // Expired, finished or unknown: start over with a fresh session.
        if (!(err instanceof ApiError) || !STALE_SESSION.has(err.code)) throw err;
        this.settled(SESSION_WAITER);
        this.client.store.delete(this.fingerprint);
      }
    }
    const req: InitiateRequest = {
      filename: this.file.name, file_size: this.file.size, check_duplicates: this.opts.checkDuplicates ?? true,
      auto_build_index: this.opts.autoBuildIndex ?? false,
    };
    if (this.opts.title) req.title = this.opts.title;
    if (this.client.chunkSize) req.chunk_size = this.client.chunkSize;
    // A busy server (too_many_uploads, server_busy) is waited out for as long as it says.
    const info = await this.client.initiate(req, signal, { ...this.retryFor(SESSION_WAITER), waitForRoom: true });
    this.settled(SESSION_WAITER);
    this.adopt(info);
    this.client.store.set(this.fingerprint, {
      session_id: this.sessionId!, chunk_size: this.chunkSize, total_chunks: this.totalChunks,
      filename: this.file.name, file_size: this.file.size, saved_at: Date.now(),
    });
  }

  private adopt(info: SessionInfo): void {
    this.sessionId = info.session_id;
    this.chunkSize = info.chunk_size;
    this.totalChunks = info.total_chunks;
    this.dispatch("chunk");
    this.dispatch("progress");
  }

  private async sendMissing(signal: AbortSignal): Promise<void> {
    const queue: number[] = [];
    for (let id = 0; id < this.totalChunks; id++) if (!this.done.has(id)) queue.push(id);
    let failure: unknown = null;
    const worker = async (): Promise<void> => {
      while (queue.length > 0 && failure === null) {
        if (this.pauseGate) await this.pauseGate;
        this.throwIfCancelled();
        const id = queue.shift();
        if (id === undefined) return;
        try {
          await this.sendOne(id, signal);
        } catch (err) {
          failure ??= err;
          throw err;
        }
        this.chunksSent++;
        this.done.add(id);
        this.inflight.delete(id);
        this.dispatch("chunk");
        this.dispatch("progress");
      }
    };
    const workers = Array.from({ length: Math.min(this.client.concurrency, queue.length) }, worker);
    const results = await Promise.allSettled(workers);
    if (failure !== null) throw failure;
    for (const r of results) if (r.status === "rejected") throw r.reason;
  }

  /** One chunk: its bytes in flight are counted as the browser reports them; a retry
   * starts the chunk's count again from 0 (what the failed try sent did not arrive). */
  private async sendOne(id: number, signal: AbortSignal): Promise<void> {
    const length = this.chunkLength(id);
    let sentThisTry = 0;
    const onProgress = (loaded: number, total: number): void => {
      // `total` is the whole multipart body; the chunk's share of it is what counts.
      const sent = total > 0 ? Math.min(length, Math.round((loaded / total) * length)) : 0;
      if (sent <= sentThisTry) return;
      this.bytesTransferred += sent - sentThisTry;
      sentThisTry = sent;
      this.inflight.set(id, sent);
      if (this.waits.delete(id)) this.dispatch("wait"); // bytes flow again: no longer waiting
      this.dispatch("progress");
    };
    const retry = this.retryFor(id, () => {
      sentThisTry = 0;
      this.inflight.set(id, 0);
      this.dispatch("progress");
    });
    try {
      await this.client.sendChunk(this.sessionId!, this.file, id, this.chunkSize, signal, onProgress, retry);
    } finally {
      this.settled(id);
    }
  }

  /** Retry options that record the wait of `who` (and tell the page: "wait" events). */
  private retryFor(who: number, before?: () => void): RetryOptions {
    return {
      onRetry: (wait) => {
        before?.();
        this.waits.set(who, wait);
        this.dispatch("wait");
      },
    };
  }

  private settled(who: number): void {
    if (this.waits.delete(who)) this.dispatch("wait");
  }

  private chunkLength(id: number): number {
    return Math.max(0, Math.min(this.chunkSize, this.file.size - id * this.chunkSize));
  }

  private throwIfCancelled(): void {
    if (this.abort.signal.aborted) throw new ApiError("aborted", "upload cancelled");
  }

  private setState(state: UploadState): void {
    if (this.state === state) return;
    this.state = state;
    this.dispatch("state");
  }

  private dispatch(type: UploadEventType): void {
    this.dispatchEvent(new CustomEvent<UploadSnapshot>(type, { detail: this.snapshot() }));
  }
}

/** The waiter key of the session's own requests (initiate, resume, complete). */
const SESSION_WAITER = -1;

/** Resume refusals after which a fresh session is the way on. */
const STALE_SESSION = new Set(["not_found", "session_expired", "session_not_active"]);
/** Failures after which the session is worth keeping for a later resume. */
const KEEP_SESSION_ON = new Set(["network_error", "rate_limited", "server_busy", "too_many_uploads", "http_502",
                                 "http_504", "insufficient_storage", "upload_incomplete"]);

// ---------------------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------------------

export type SocketState = "connecting" | "open" | "closed";

/**
 * `/ws/{client_id}` with reconnection (backoff up to 10 s). Listen with
 * `addEventListener("event", e => e.detail: ServerEvent)` and `"state"`.
 */
export class ProgressSocket extends EventTarget {
  state: SocketState = "connecting";
  private ws: WebSocket | null = null;
  private attempts = 0;
  private closedByUs = false;
  private readonly opened: Promise<void>;
  private markOpen: () => void = () => {};

  constructor(private readonly url: string) {
    super();
    this.opened = new Promise((resolve) => (this.markOpen = resolve));
    this.open();
  }

  /** Resolves once connected, or after `timeoutMs` whatever happened (progress is optional). */
  ready(timeoutMs = 3000): Promise<boolean> {
    return Promise.race([this.opened.then(() => true), sleep(timeoutMs).then(() => false)]);
  }

  send(message: Record<string, unknown>): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  close(): void {
    this.closedByUs = true;
    this.ws?.close();
  }

  private open(): void {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.setState("connecting");
    ws.onopen = () => {
      this.attempts = 0;
      this.setState("open");
      this.markOpen();
    };
    ws.onmessage = (msg: MessageEvent) => {
      let event: ServerEvent;
      try {
        event = JSON.parse(String(msg.data)) as ServerEvent;
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent<ServerEvent>("event", { detail: event }));
    };
    ws.onclose = () => {
      this.setState("closed");
      if (this.closedByUs) return;
      const delay = backoffDelay(this.attempts++, null, { baseMs: 500, maxMs: 10_000 });
      setTimeout(() => this.open(), delay);
    };
  }

  private setState(state: SocketState): void {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent<SocketState>("state", { detail: state }));
  }
}
