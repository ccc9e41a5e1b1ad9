/**
 * The upload page: pick or drop PDFs, one card per file with a progress bar driven by the
 * browser's own upload progress (bytes within each chunk), a speed averaged over the last
 * few seconds and the time left from it, what a wait is for (a stall, an unreachable or a
 * busy server), pause/resume/cancel, the unfinished uploads the server keeps
 * (`/resumable`), the documents list and the search box.
 *
 * Of the two WebSocket events every chunk produces (`upload_progress` and
 * `chunk_progress`, the same figures in two shapes), the page reads `upload_progress`
 * only, and only as a floor for the bar: the bytes the server holds. Speed and time left
 * are the page's own, from what it sends.
 *
 * URL parameters (for tuning and tests): `chunk_size` (bytes, the server clamps it to
 * 2-8 MiB) and `concurrency` (chunks in flight per file, default 3). On a server with API
 * keys, `api_key` (kept in localStorage and taken out of the address bar) or the "API key"
 * box in the header gives the page its key.
 */

import {
  ADMISSION_CODES, ApiError, FINGERPRINT_SAMPLE_BYTES, ProgressSocket, SpeedMeter, Upload, UploadClient, fingerprint,
  looksLikePdf, timeLeft, type CompleteResult, type Finding, type ResumableSession, type RetryWait, type ServerEvent,
  type UploadSnapshot, type UploadState, eventSessionId,
} from "@pdf-upload/client";
import { Documents } from "./documents";
import { byId, el } from "./dom";
import { formatBytes, formatDuration } from "./text";

const params = new URLSearchParams(location.search);
const positive = (name: string): number | undefined => {
  const n = Number(params.get(name));
  return Number.isFinite(n) && n > 0 ? n : undefined;
};

const KEY_STORE = "pdf-upload:api-key";

/** The key from `?api_key=` (remembered, and removed from the address and history) or remembered. */
function pageApiKey(): string | undefined {
  const fromUrl = params.get("api_key");
  if (fromUrl !== null) {
    rememberKey(fromUrl);
    params.delete("api_key");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
    return fromUrl.trim() || undefined;
  }
  try {
    return localStorage.getItem(KEY_STORE) ?? undefined;
  } catch {
    return undefined;
  }
}

function rememberKey(key: string): void {
  try {
    if (key.trim()) localStorage.setItem(KEY_STORE, key.trim());
    else localStorage.removeItem(KEY_STORE);
  } catch {
    /* no storage: the key lasts as long as the page */
  }
}

const client = new UploadClient({ chunkSize: positive("chunk_size"), concurrency: positive("concurrency"),
                                  apiKey: pageApiKey() });
const socket: ProgressSocket = client.connect();
const documents = new Documents(client, positive("page_size") ?? 20, () => askForKey());

// ---------------------------------------------------------------------------------------
// The API key (only for servers that have keys)
// ---------------------------------------------------------------------------------------

byId<HTMLFormElement>("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  rememberKey(byId<HTMLInputElement>("key-input").value);
  location.reload(); // every request and the WebSocket start over with the new key
});

function askForKey(): void {
  byId<HTMLDetailsElement>("key-box").open = true;
  byId("key-hint").textContent = client.apiKey ? "The server refused this key." : "This server wants an API key.";
}

function isUnauthorized(err: unknown): boolean {
  return err instanceof ApiError && err.code === "unauthorized";
}

// ---------------------------------------------------------------------------------------
// What refusals are called
// ---------------------------------------------------------------------------------------

const REFUSALS: Record<string, string> = {
  file_too_large: "Too large",
  not_a_pdf: "Not a PDF",
  security_rejected: "Refused for security reasons",
  invalid_pdf: "Damaged or unreadable PDF",
  integrity_failed: "The stored bytes did not verify",
  checksum_mismatch: "A chunk arrived corrupted",
  duplicate_document: "Already stored",
  too_many_uploads: "Too many uploads at once",
  rate_limited: "Too many requests",
  server_busy: "The server is busy",
  insufficient_storage: "The server is out of disk space",
  session_expired: "The upload session expired",
  network_error: "Network error",
  empty_file: "Empty file",
  unauthorized: "API key missing or refused",
  upload_quota_exceeded: "Your unfinished uploads fill your quota",
  request_too_large: "Request too large",
};

const REFUSED_CODES = new Set(["file_too_large", "not_a_pdf", "security_rejected", "invalid_pdf", "empty_file"]);

// ---------------------------------------------------------------------------------------
// One card per file
// ---------------------------------------------------------------------------------------

/** "flagged": stored, but the security policy flags what the scan found (shown in amber). */
type CardState = UploadState | "refused" | "flagged";

const STATE_LABEL: Record<CardState, string> = {
  idle: "waiting", preparing: "preparing", uploading: "uploading", paused: "paused", completing: "verifying",
  completed: "done", failed: "failed", cancelled: "cancelled", refused: "refused", flagged: "flagged",
};
const FINDINGS_SHOWN = 8;

/** No byte for this long while uploading: the card says "stalled". */
const STALL_MS = 4000;
const TICK_MS = 250;

class UploadCard {
  readonly root: HTMLDivElement;
  private readonly badge = el("span", { className: "badge" });
  private readonly fill = el("div");
  private readonly pct = el("span", { className: "pct" }, "0%");
  private readonly bytes = el("span", { className: "bytes" });
  private readonly speed = el("span", { className: "speed" });
  private readonly eta = el("span", { className: "eta" });
  private readonly status = el("span", { className: "status" });
  private readonly message = el("div", { className: "message" });
  private readonly findings = el("ul", { className: "findings" });
  private readonly note = el("div", { className: "note" });
  private readonly pauseBtn = el("button", { type: "button", className: "pause", textContent: "Pause" });
  private readonly cancelBtn = el("button", { type: "button", className: "cancel", textContent: "Cancel" });
  private readonly meter = new SpeedMeter(5000, 1000);
  private percent = 0;
  private ticker: ReturnType<typeof setInterval> | null = null;
  private waitSaid: RetryWait | null = null;
  upload: Upload | null = null;

  constructor(readonly file: File) {
    this.root = el("div", { className: "card upload" });
    this.root.dataset["filename"] = file.name;
    this.root.dataset["testid"] = "upload";
    const bar = el("div", { className: "bar" }, this.fill);
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    this.findings.hidden = true;
    this.status.setAttribute("aria-live", "polite");
    this.root.append(
      el("div", { className: "upload-head" }, el("span", { className: "upload-name", title: file.name }, file.name),
         this.badge),
      bar,
      el("div", { className: "upload-meta" }, this.pct, this.bytes, this.speed, this.eta, this.status,
         el("span", { className: "actions" }, this.pauseBtn, this.cancelBtn)),
      this.message, this.note, this.findings,
    );
    this.note.hidden = true;
    this.pauseBtn.addEventListener("click", () => {
      if (!this.upload) return;
      if (this.upload.state === "paused") this.upload.resume();
      else this.upload.pause();
    });
    this.cancelBtn.addEventListener("click", () => void this.upload?.cancel());
    this.bytes.textContent = `0 B of ${formatBytes(file.size)}`;
    this.setState("idle");
  }

  /** Follow `upload`: its bytes, its waits, and a clock that keeps speed, time left and
   * countdowns current between events (a stall sends no events). */
  watch(upload: Upload): void {
    this.upload = upload;
    upload.addEventListener("progress", (e) => this.onProgress((e as CustomEvent<UploadSnapshot>).detail));
    upload.addEventListener("wait", () => this.render());
    this.ticker = setInterval(() => this.render(), TICK_MS);
  }

  setState(state: CardState): void {
    const was = this.root.dataset["state"];
    this.root.dataset["state"] = state;
    this.badge.dataset["state"] = state;
    this.badge.textContent = STATE_LABEL[state];
    const active = state === "uploading" || state === "paused" || state === "preparing";
    const finished = state === "completed" || state === "failed" || state === "refused" || state === "cancelled" ||
      state === "flagged";
    this.pauseBtn.hidden = finished;
    this.cancelBtn.hidden = finished;
    this.pauseBtn.disabled = !(state === "uploading" || state === "paused");
    this.pauseBtn.textContent = state === "paused" ? "Resume" : "Pause";
    this.cancelBtn.disabled = !(active || state === "idle");
    if (state === "uploading" && was === "paused") this.meter.reset(); // time paused is not slowness
    if (finished && this.ticker !== null) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
    if (state === "paused") this.say("Paused: chunks in flight finish, no new ones start.");
    this.render();
  }

  setPercent(p: number, bytesDone?: number): void {
    this.percent = Math.min(100, Math.max(this.percent, p));
    const shown = this.percent >= 100 ? "100%" : `${this.percent.toFixed(this.percent < 10 ? 1 : 0)}%`;
    this.pct.textContent = shown;
    this.fill.style.width = `${this.percent}%`;
    this.root.querySelector(".bar")?.setAttribute("aria-valuenow", String(Math.round(this.percent)));
    if (bytesDone !== undefined) this.bytes.textContent = `${formatBytes(bytesDone)} of ${formatBytes(this.file.size)}`;
  }

  /** The browser's count of bytes sent (within chunks too). */
  private onProgress(snap: UploadSnapshot): void {
    this.meter.add(snap.bytesTransferred);
    this.setPercent((snap.bytesUploaded / this.file.size) * 100, snap.bytesUploaded);
    this.root.dataset["bytes"] = String(snap.bytesUploaded);
  }

  /**
   * Speed and time left while bytes move; otherwise why they do not: a retry pending
   * (server unreachable or busy, with its countdown), or a stall. Never a stale figure:
   * speed and time left are blank whenever the upload is not actively sending.
   */
  private render(): void {
    const upload = this.upload;
    const state = this.root.dataset["state"];
    const now = Date.now();
    let speed = "";
    let eta = "";
    let status = "";
    let wait = "";
    const pending = upload?.waiting ?? null;
    if (upload && pending && (state === "uploading" || state === "preparing" || state === "completing")) {
      const left = Math.ceil((pending.until - now) / 1000);
      const when = left >= 1 ? `in ${left} s` : "now…";
      if (pending.code === "network_error") {
        wait = "unreachable";
        status = `server unreachable, retrying ${when}`;
      } else if (ADMISSION_CODES.has(pending.code) || pending.code === "rate_limited") {
        wait = "busy";
        status = state === "preparing" ? `server busy, starting ${when}` : `server busy, retrying ${when}`;
      } else {
        wait = "retrying";
        status = `server error (${pending.status || pending.code}), retrying ${when}`;
      }
      if (pending !== this.waitSaid && wait === "busy" && state === "preparing") {
        const secs = Math.max(1, Math.round(pending.delayMs / 1000));
        this.say(`Waiting for the server: ${pending.message}. ` +
                 (pending.serverSaid ? `It asked to try again in ${secs} s.` : `Trying again in ${secs} s.`));
      }
      this.waitSaid = pending;
    } else if (upload && state === "uploading") {
      const idle = this.meter.idleMs(now);
      if (idle !== null && idle >= STALL_MS) {
        wait = "stalled";
        status = `stalled: nothing sent for ${Math.floor(idle / 1000)} s`;
      } else {
        const rate = this.meter.rate(now);
        const left = timeLeft(this.file.size - upload.bytesUploaded, rate);
        if (rate !== null && rate > 0) speed = `${formatBytes(rate)}/s`;
        if (left !== null && upload.bytesUploaded < this.file.size) eta = `${formatDuration(left)} left`;
      }
    }
    if (this.waitSaid !== null && pending === null) this.waitSaid = null;
    this.speed.textContent = speed;
    this.eta.textContent = eta;
    this.status.textContent = status;
    if (wait) this.root.dataset["wait"] = wait;
    else delete this.root.dataset["wait"];
    if (wait === "busy" && state === "preparing") this.badge.textContent = "waiting";
    else if (state) this.badge.textContent = STATE_LABEL[state as CardState];
  }

  onServerEvent(event: ServerEvent): void {
    if (event.type === "upload_progress") {
      // The bytes the server holds: a floor for the bar (the page's own count leads it).
      const d = event.data;
      this.setPercent(d.progress_percentage);
    } else if (event.type === "upload_status") {
      const stored = this.root.dataset["state"] === "completed" || this.root.dataset["state"] === "flagged";
      if (stored || event["index_status"] !== undefined ||
          event.status === "importing") {
        // After the upload: the import into the search index reports here.
        this.note.hidden = false;
        this.note.dataset["status"] = event.status;
        this.note.textContent = event.message;
        if (event.status === "completed" || event.status === "failed") void documents.refresh();
      } else if (event.status === "failed") {
        this.fail(new ApiError(event.error ?? "failed", event.message, 0, { findings: event.findings ?? [] }));
      } else if (event.status !== "completed" && event.status !== "cancelled") {
        this.say(event.message);
      }
    }
  }

  say(text: string): void {
    this.message.textContent = text;
  }

  done(result: CompleteResult): void {
    this.setPercent(100, this.file.size);
    const doc = result.document;
    const flagged = doc.security?.verdict === "flagged";
    this.setState(flagged ? "flagged" : "completed");
    if (flagged) {
      const findings = doc.security?.findings ?? [];
      this.showFindings(findings);
      this.root.dataset["findings"] = String(findings.length);
    }
    this.message.replaceChildren(
      flagged ? "Stored, with security warnings (below), as " : result.duplicate ? "Already stored as " : "Stored as ",
      documents.viewLink(doc.id, doc.title),
      doc.page_count != null ? ` · ${doc.page_count} page${doc.page_count === 1 ? "" : "s"}` : "",
      this.upload?.resumed
        ? ` · resumed: ${this.upload.chunksSent} of ${this.upload.totalChunks} chunks sent after the interruption`
        : "",
    );
    if (this.upload?.resumed) this.root.dataset["resumed"] = String(this.upload.chunksSent);
  }

  fail(error: ApiError): void {
    const refused = REFUSED_CODES.has(error.code);
    this.setState(refused ? "refused" : "failed");
    const label = REFUSALS[error.code];
    const findings: Finding[] = error.findings;
    const detail = findings.length > 0
      ? `the security policy refuses what the scan found (${findings.length} finding${findings.length === 1 ? "" : "s"})`
      : error.message;
    this.message.textContent = label ? `${label}: ${detail}` : detail;
    this.message.dataset["error"] = error.code;
    if (error.code === "unauthorized") askForKey();
    this.showFindings(findings);
  }

  /** The findings' kind and detail, the first few; text only (details come from the PDF). */
  private showFindings(findings: Finding[]): void {
    const items = findings.slice(0, FINDINGS_SHOWN).map((f) =>
      el("li", {}, el("span", { className: "kind" }, f.kind), `: ${f.detail}`));
    if (findings.length > FINDINGS_SHOWN) items.push(el("li", {}, `and ${findings.length - FINDINGS_SHOWN} more`));
    this.findings.replaceChildren(...items);
    this.findings.hidden = findings.length === 0;
  }
}

// ---------------------------------------------------------------------------------------
// The uploads
// ---------------------------------------------------------------------------------------

const cardsBySession = new Map<string, UploadCard>();
const uploadsBox = byId("uploads");

socket.addEventListener("event", (e) => {
  const event = (e as CustomEvent<ServerEvent>).detail;
  if (event.type === "memory_warning") return;
  const sid = eventSessionId(event);
  if (sid) cardsBySession.get(sid)?.onServerEvent(event);
});
socket.addEventListener("state", (e) => {
  const state = (e as CustomEvent<string>).detail;
  const conn = byId("conn");
  conn.dataset["state"] = state;
  conn.textContent = state === "open" ? "live progress" : state === "connecting" ? "connecting…" : "reconnecting…";
});

async function precheck(file: File): Promise<ApiError | null> {
  if (file.size === 0) return new ApiError("empty_file", "the file is empty");
  const head = new Uint8Array(await file.slice(0, 1024).arrayBuffer());
  if (!looksLikePdf(head)) {
    return new ApiError("not_a_pdf", `${file.name} does not start with a PDF header (%PDF-)`);
  }
  return null;
}

async function startUpload(file: File): Promise<void> {
  byId("uploads-section").hidden = false;
  const card = new UploadCard(file);
  uploadsBox.prepend(card.root);
  const refusal = await precheck(file);
  if (refusal) {
    card.fail(refusal);
    return;
  }
  await socket.ready(3000); // progress events only reach a connected socket
  const upload = client.upload(file);
  card.watch(upload);
  upload.addEventListener("state", () => {
    if (upload.sessionId) cardsBySession.set(upload.sessionId, card);
    if (upload.state === "uploading" && upload.resumed && upload.chunksSent === 0) {
      card.say(`Resuming: ${upload.chunksDone} of ${upload.totalChunks} chunks were already on the server.`);
    } else if (upload.state === "uploading" && !upload.resumed) {
      card.say(`Sending ${upload.totalChunks} chunk${upload.totalChunks === 1 ? "" : "s"} of ` +
               `${formatBytes(upload.chunkSize)}, ${client.concurrency} at a time.`);
    } else if (upload.state === "completing") {
      card.say("Verifying and importing…");
    } else if (upload.state === "cancelled") {
      card.say("Cancelled; the partial upload was removed from the server.");
    }
    if (upload.state !== "failed" && upload.state !== "completed") card.setState(upload.state);
    if (upload.state === "uploading") void refreshResumable(); // it is no longer waiting for its file
  });
  upload.addEventListener("chunk", () => {
    if (upload.sessionId) cardsBySession.set(upload.sessionId, card);
    if (upload.state === "uploading" && upload.resumed) {
      card.say(`Resumed: ${upload.chunksDone} of ${upload.totalChunks} chunks on the server, ` +
               `${upload.chunksSent} sent now.`);
    }
  });
  try {
    const result = await upload.start();
    card.done(result);
    void documents.refresh();
  } catch (err) {
    const error = err instanceof ApiError ? err : new ApiError("client_error", String(err));
    if (error.code !== "cancelled") card.fail(error);
  } finally {
    void refreshResumable();
  }
}

function pick(files: FileList | File[] | null): void {
  for (const file of Array.from(files ?? [])) void startUpload(file);
}

const drop = byId("drop");
const input = byId<HTMLInputElement>("file-input");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  pick(e.dataTransfer?.files ?? null);
});
input.addEventListener("change", () => {
  pick(input.files);
  input.value = ""; // picking the same file again fires "change" again
});

// ---------------------------------------------------------------------------------------
// Unfinished uploads (/resumable)
// ---------------------------------------------------------------------------------------

async function refreshResumable(): Promise<void> {
  let sessions: ResumableSession[];
  try {
    sessions = await client.resumable();
  } catch (err) {
    if (isUnauthorized(err)) askForKey();
    return;
  }
  const active = new Set(cardsBySession.keys());
  const known = new Map([...client.store.all().values()].map((rec) => [rec.session_id, rec]));
  const shown = sessions.filter((s) => !active.has(s.session_id) ||
    ["failed", "cancelled"].includes(cardsBySession.get(s.session_id)?.upload?.state ?? ""));
  byId("resumable-section").hidden = shown.length === 0;
  byId("resumable").replaceChildren(...shown.map((s) => {
    const discard = el("button", { type: "button", textContent: "Discard" });
    discard.addEventListener("click", async () => {
      discard.disabled = true;
      try {
        await client.cancel(s.session_id, "discarded from the page");
      } catch {
        /* gone already */
      }
      client.store.deleteSession(s.session_id);
      void refreshResumable();
    });
    const hint = known.has(s.session_id)
      ? "Pick this file again to continue."
      : "Started in another browser: pick the file there to continue, or discard it.";
    const item = el("div", { className: "card resumable-item" },
      el("div", { className: "info" },
         el("div", {}, el("strong", {}, s.filename), ` — ${s.progress_percentage.toFixed(0)}% ` +
            `(${s.uploaded_chunks}/${s.total_chunks} chunks of ${formatBytes(s.total_size)})`),
         el("div", { className: "sub" }, `${hint} Started ${formatAge(s.age_hours)} ago.`)),
      discard);
    item.dataset["session"] = s.session_id;
    item.dataset["testid"] = "resumable";
    return item;
  }));
}

function formatAge(hours: number): string {
  return hours < 1 / 60 ? "moments" : formatDuration(hours * 3600);
}

// ---------------------------------------------------------------------------------------
// Documents and search
// ---------------------------------------------------------------------------------------

void documents.start();
void refreshResumable();

// Handy in the console; the tests drive the page through the DOM only.
Object.assign(window, { uploadClient: client, FINGERPRINT_SAMPLE_BYTES, fingerprint });
