// Unit tests of the client, on the built package (npm test builds it first): node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ApiError, SessionStore, SpeedMeter, UploadClient, backoffDelay, chunkRange, fingerprint, fingerprintOf, looksLikePdf,
  parseRetryAfter, timeLeft, totalChunks,
} from "../dist/index.js";

test("parseRetryAfter: seconds, HTTP dates, junk", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(" 0.5 "), 500);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter(""), null);
  assert.equal(parseRetryAfter("soon"), null);
  const now = Date.parse("2026-01-19T10:00:00Z");
  assert.equal(parseRetryAfter("Mon, 19 Jan 2026 10:00:07 GMT", now), 7000);
  assert.equal(parseRetryAfter("Mon, 19 Jan 2026 09:00:00 GMT", now), 0);
});

test("backoffDelay honours Retry-After, else exponential with jitter, capped", () => {
  assert.equal(backoffDelay(0, 2000), 2000);
  assert.equal(backoffDelay(5, 2000), 2000, "the server's hint wins over the attempt count");
  assert.equal(backoffDelay(0, 120_000, { maxMs: 30_000 }), 120_000, "the server's hint is obeyed as given...");
  assert.equal(backoffDelay(0, 900_000), 300_000, "...up to 5 minutes");
  assert.equal(backoffDelay(0, 900_000, { maxRetryAfterMs: 60_000 }), 60_000);
  const lo = () => 0, hi = () => 0.999999;
  assert.equal(backoffDelay(0, null, { baseMs: 500, random: lo }), 250);
  assert.equal(backoffDelay(3, null, { baseMs: 500, random: lo }), 2000);
  assert.ok(backoffDelay(3, null, { baseMs: 500, random: hi }) <= 4000);
  assert.equal(backoffDelay(20, null, { baseMs: 500, maxMs: 8000, random: hi }), 8000);
});

test("chunk ranges follow the contract: all chunk_size long but the last", () => {
  const mib = 1 << 20;
  assert.equal(totalChunks(20 * mib + 1, 2 * mib), 11);
  assert.deepEqual(chunkRange(0, 2 * mib, 5 * mib), [0, 2 * mib]);
  assert.deepEqual(chunkRange(2, 2 * mib, 5 * mib), [4 * mib, 5 * mib]);
  assert.throws(() => chunkRange(3, 2 * mib, 5 * mib), RangeError);
});

test("fingerprint: name, size, mtime and the first MiB", async () => {
  const bytes = new Uint8Array(3 << 20).fill(7);
  const file = (name, data, lastModified = 1000) =>
    Object.assign(new Blob([data]), { name, lastModified });
  const a = await fingerprint(file("a.pdf", bytes));
  assert.equal(a, await fingerprint(file("a.pdf", bytes)));
  assert.notEqual(a, await fingerprint(file("b.pdf", bytes)));
  assert.notEqual(a, await fingerprint(file("a.pdf", bytes, 2000)));
  const head = bytes.slice();
  head[10] = 8;
  assert.notEqual(a, await fingerprint(file("a.pdf", head)));
  const tail = bytes.slice();
  tail[tail.length - 1] = 8; // past the first MiB: same size, same head, same key by design
  assert.equal(a, await fingerprint(file("a.pdf", tail)));
  assert.match(a, /^v1:a\.pdf:3145728:1000:[0-9a-f]{64}$/);
  assert.equal(fingerprintOf("x y.pdf", 1, 2, "ab"), "v1:x%20y.pdf:1:2:ab");
});

test("looksLikePdf", () => {
  const enc = new TextEncoder();
  assert.ok(looksLikePdf(enc.encode("%PDF-1.7\n...")));
  assert.ok(looksLikePdf(enc.encode("\r\n%PDF-1.4")));
  assert.ok(!looksLikePdf(enc.encode("hello")));
});

function memoryStorage() {
  const map = new Map();
  return {
    getItem: (k) => (map.has(k) ? map.get(k) : null), setItem: (k, v) => map.set(k, String(v)),
    removeItem: (k) => map.delete(k), key: (i) => [...map.keys()][i] ?? null, get length() { return map.size; },
  };
}

test("SessionStore remembers sessions per fingerprint", () => {
  const store = new SessionStore(memoryStorage());
  const rec = { session_id: "s1", chunk_size: 2, total_chunks: 3, filename: "a.pdf", file_size: 5, saved_at: 1 };
  store.set("fp1", rec);
  store.set("fp2", { ...rec, session_id: "s2" });
  assert.deepEqual(store.get("fp1"), rec);
  assert.equal(store.all().size, 2);
  store.deleteSession("s2");
  assert.equal(store.get("fp2"), null);
  assert.equal(new SessionStore(null).get("fp1"), null, "no storage: nothing remembered, no crash");
});

test("requests retry 429/503 after Retry-After and surface the server's error code", async () => {
  const calls = [];
  const replies = [
    new Response(JSON.stringify({ success: false, error: "rate_limited", message: "slow down" }),
                 { status: 429, headers: { "Retry-After": "0.05" } }),
    new Response(JSON.stringify({ success: false, error: "server_busy", message: "busy" }),
                 { status: 503, headers: { "Retry-After": "0.02" } }),
    new Response(JSON.stringify([]), { status: 200 }),
    new Response(JSON.stringify({ success: false, error: "file_too_large", message: "over 1 MiB" }), { status: 413 }),
  ];
  const fetchStub = async (url, init) => {
    calls.push([url, init.method, Date.now()]);
    return replies.shift();
  };
  const client = new UploadClient({ fetch: fetchStub, storage: null, clientId: "t1" });
  assert.deepEqual(await client.resumable(), []);
  assert.equal(calls.length, 3);
  assert.ok(calls[1][2] - calls[0][2] >= 45, "waited for Retry-After");
  await assert.rejects(client.initiate({ filename: "a.pdf", file_size: 9e9 }), (err) => {
    assert.ok(err instanceof ApiError);
    assert.equal(err.code, "file_too_large");
    assert.equal(err.status, 413);
    assert.equal(err.message, "over 1 MiB");
    return true;
  });
  assert.equal(calls.length, 4, "a 413 is not retried");
});

test("an API key goes in the Authorization header and in the WebSocket's ?token=", async () => {
  const seen = [];
  const fetchStub = async (url, init) => {
    seen.push(init.headers);
    return new Response(url.endsWith("/file") ? "%PDF-1.7" : "[]", { status: 200 });
  };
  const keyed = new UploadClient({ fetch: fetchStub, storage: null, clientId: "t1", apiKey: "k/ey+1",
                                   baseUrl: "http://h:1" });
  await keyed.documents();
  assert.equal(seen[0].authorization, "Bearer k/ey+1");
  assert.equal(keyed.wsUrl(), "ws://h:1/ws/t1?token=k%2Fey%2B1");
  assert.equal(await (await keyed.download(3)).text(), "%PDF-1.7");
  assert.equal(seen[1].authorization, "Bearer k/ey+1");
  const open = new UploadClient({ fetch: fetchStub, storage: null, clientId: "t2", baseUrl: "http://h:1" });
  await open.documents();
  assert.equal(seen[2].authorization, undefined, "no key: no header");
  assert.equal(open.wsUrl(), "ws://h:1/ws/t2");
});

test("a resumed upload's first progress is the bytes already on the server", async () => {
  const file = new File([new Uint8Array(25)], "r.pdf", { lastModified: 7 });
  const storage = memoryStorage();
  const info = { session_id: "s9", upload_url: "/u", chunk_size: 10, total_chunks: 3, expires_at: "", websocket_room: "",
                 client_id: "t9", uploaded_chunks: [0, 2], missing_chunks: [1], next_chunk_id: 1, progress_percentage: 60 };
  const fetchStub = async (url) => {
    if (url.endsWith("/resume")) return new Response(JSON.stringify(info), { status: 200 });
    if (url.includes("/chunk/")) return new Response(JSON.stringify({ success: true }), { status: 200 });
    return new Response(JSON.stringify({ document: { id: 1 }, duplicate: false }), { status: 200 });
  };
  const client = new UploadClient({ fetch: fetchStub, storage, clientId: "t9" });
  client.store.set(await fingerprint(file), { session_id: "s9", chunk_size: 10, total_chunks: 3, filename: "r.pdf",
                                              file_size: 25, saved_at: 1 });
  const upload = client.upload(file);
  const seen = [];
  upload.addEventListener("chunk", (e) => seen.push(e.detail.bytesDone));
  await upload.start();
  assert.equal(upload.resumed, true);
  assert.deepEqual(seen, [15, 25], "starts at chunks 0 and 2 (10 + 5 bytes), then the one sent");
});

test("SpeedMeter: a moving average over its window, null before a second, falling when nothing moves", () => {
  const m = new SpeedMeter(5000, 1000);
  assert.equal(m.rate(0), null);
  m.add(0, 0);
  m.add(400_000, 500);
  assert.equal(m.rate(500), null, "half a second of samples is not enough");
  m.add(1_000_000, 1000);
  assert.equal(m.rate(1000), 1_000_000);
  // 10 s at 1 MB/s, then 10 s at 4 MB/s: the figure is the last 5 s only.
  let bytes = 1_000_000;
  for (let t = 1100; t <= 10_000; t += 100) m.add((bytes += 100_000), t);
  for (let t = 10_100; t <= 20_000; t += 100) m.add((bytes += 400_000), t);
  assert.equal(Math.round(m.rate(20_000)), 4_000_000);
  assert.equal(m.idleMs(20_000), 0);
  // Nothing moves for 3 s: the average over the window falls, and the idle time shows it.
  assert.equal(Math.round(m.rate(23_000)), 1_600_000);
  assert.equal(m.idleMs(23_000), 3000);
  assert.equal(m.rate(26_000), 0);
  m.add(bytes - 5, 26_000);
  assert.equal(m.idleMs(26_000), 6000, "a smaller count is ignored (the count only grows)");
  m.reset();
  assert.equal(m.rate(27_000), null);
  assert.equal(m.idleMs(27_000), null);
});

test("timeLeft: remaining bytes over the speed; none without a speed", () => {
  assert.equal(timeLeft(10_000_000, 2_000_000), 5);
  assert.equal(timeLeft(0, 2_000_000), 0);
  assert.equal(timeLeft(10, null), null);
  assert.equal(timeLeft(10, 0), null);
});

function busy(code, status, retryAfter, message = "5 uploads are already active; retry later") {
  return new Response(JSON.stringify({ success: false, error: code, message }),
                      { status, headers: { "Retry-After": String(retryAfter) } });
}

test("a busy server is waited out as long as it says, without using up the retries, and each wait is told", async () => {
  const replies = [busy("too_many_uploads", 429, 0.03), busy("server_busy", 503, 0.02), busy("too_many_uploads", 429, 0.01),
                   new Response(JSON.stringify({ session_id: "s1" }), { status: 201 })];
  const times = [];
  const fetchStub = async () => {
    times.push(Date.now());
    return replies.shift();
  };
  const client = new UploadClient({ fetch: fetchStub, storage: null, clientId: "t1", maxRetries: 1 });
  const waits = [];
  const info = await client.initiate({ filename: "a.pdf", file_size: 5 }, undefined,
                                     { waitForRoom: true, onRetry: (w) => waits.push(w) });
  assert.equal(info.session_id, "s1");
  assert.deepEqual(waits.map((w) => [w.code, w.delayMs, w.serverSaid, w.attempt]),
                   [["too_many_uploads", 30, true, 1], ["server_busy", 20, true, 2], ["too_many_uploads", 10, true, 3]]);
  assert.equal(waits[0].message, "5 uploads are already active; retry later");
  assert.ok(times[1] - times[0] >= 25, "waited the server's Retry-After");

  // Without waitForRoom the same refusals count as tries.
  replies.push(busy("too_many_uploads", 429, 0.01), busy("too_many_uploads", 429, 0.01));
  await assert.rejects(client.initiate({ filename: "a.pdf", file_size: 5 }), (err) => err.code === "too_many_uploads");
  assert.equal(replies.length, 0);
});

test("an upload reports its bytes and its waits: a chunk's failed try starts the chunk again from 0", async () => {
  const file = new File([new Uint8Array(25)], "p.pdf", { lastModified: 7 });
  let chunkCalls = 0;
  const fetchStub = async (url) => {
    if (url.endsWith("/initiate")) {
      return new Response(JSON.stringify({ session_id: "s2", upload_url: "/u", chunk_size: 10, total_chunks: 3,
                                           expires_at: "", websocket_room: "", client_id: "t2" }), { status: 201 });
    }
    if (url.includes("/chunk/")) {
      if (chunkCalls++ === 1) throw new TypeError("connection refused");
      return new Response(JSON.stringify({ success: true }), { status: 200 });
    }
    return new Response(JSON.stringify({ document: { id: 1 }, duplicate: false }), { status: 200 });
  };
  const client = new UploadClient({ fetch: fetchStub, storage: null, clientId: "t2", concurrency: 1,
                                    backoff: { baseMs: 10, random: () => 0 } });
  const upload = client.upload(file);
  const progress = [];
  const waits = [];
  upload.addEventListener("progress", (e) => progress.push([e.detail.bytesUploaded, e.detail.bytesTransferred]));
  upload.addEventListener("wait", (e) => waits.push(e.detail.waiting?.code ?? null));
  await upload.start();
  assert.deepEqual(progress.at(0), [0, 0]);
  assert.deepEqual(progress.at(-1), [25, 25]);
  assert.ok(progress.every(([up], i) => i === 0 || up >= progress[i - 1][0]), JSON.stringify(progress));
  assert.deepEqual(waits, ["network_error", null], "one wait for the refused connection, then none");
  assert.equal(upload.snapshot().waiting, null);
});
