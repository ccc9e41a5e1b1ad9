// Minimal upload page: chunks in parallel with per-chunk SHA-256, progress over the WebSocket.
const API = "/api/documents/streaming";
const clientId = "page_" + crypto.randomUUID().slice(0, 12);
const bars = new Map();

function ws() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const sock = new WebSocket(`${proto}://${location.host}/ws/${clientId}`);
  sock.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    const sid = ev.session_id || (ev.data && ev.data.session_id);
    const ui = bars.get(sid);
    if (!ui) return;
    if (ev.type === "upload_progress") {
      const d = ev.data;
      ui.bar.value = d.progress_percentage;
      ui.meta.textContent = `${d.progress_percentage.toFixed(1)}% · ${(d.upload_speed_bps / 1048576).toFixed(1)} MiB/s` +
        (d.estimated_time_remaining != null ? ` · ${d.estimated_time_remaining}s left` : "");
    } else if (ev.type === "upload_status") {
      ui.status.textContent = ev.message;
      if (ev.status === "failed") ui.status.className = "error";
    }
  };
  return new Promise((resolve) => { sock.onopen = () => resolve(sock); sock.onerror = () => resolve(sock); });
}

async function call(path, body) {
  const res = await fetch(path, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify(body || {}) });
  const json = await res.json();
  if (!res.ok) throw Object.assign(new Error(json.message), { code: json.error });
  return json;
}

async function sha256(buf) {
  const digest = await crypto.subtle.digest("SHA-256", buf);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sendChunk(sid, file, i, size) {
  const blob = file.slice(i * size, Math.min(file.size, (i + 1) * size));
  const form = new FormData();
  form.append("chunk_id", String(i));
  form.append("chunk_offset", String(i * size));
  form.append("is_final", String((i + 1) * size >= file.size));
  form.append("checksum", await sha256(await blob.arrayBuffer()));
  form.append("file", blob, file.name);
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${API}/chunk/${sid}`, { method: "POST", body: form });
    if (res.ok) return;
    const json = await res.json().catch(() => ({}));
    if ((res.status === 429 || res.status === 503) && attempt < 8) {
      const wait = Number(res.headers.get("Retry-After") || 1) * 1000;
      await new Promise((r) => setTimeout(r, wait * (attempt + 1)));
      continue;
    }
    throw Object.assign(new Error(json.message || res.statusText), { code: json.error });
  }
}

async function upload(file) {
  const box = document.createElement("div");
  box.className = "upload";
  box.innerHTML = `<strong></strong><progress max="100" value="0"></progress><div class="meta"></div><div></div>`;
  box.querySelector("strong").textContent = file.name;
  document.getElementById("uploads").append(box);
  const ui = { bar: box.querySelector("progress"), meta: box.querySelector(".meta"), status: box.lastElementChild };
  try {
    const s = await call(`${API}/initiate`, { filename: file.name, file_size: file.size, client_id: clientId });
    bars.set(s.session_id, ui);
    let next = 0;
    const worker = async () => { while (next < s.total_chunks) await sendChunk(s.session_id, file, next++, s.chunk_size); };
    await Promise.all([worker(), worker(), worker()]);
    const done = await call(`${API}/complete/${s.session_id}`);
    ui.bar.value = 100;
    ui.status.textContent = done.duplicate ? "Already stored" : "Stored";
    refresh();
  } catch (err) {
    ui.status.className = "error";
    ui.status.textContent = `${err.code || "error"}: ${err.message}`;
  }
}

async function refresh() {
  const docs = await (await fetch("/api/documents")).json();
  const body = document.querySelector("#documents tbody");
  body.replaceChildren(...docs.map((d) => {
    const tr = document.createElement("tr");
    const a = Object.assign(document.createElement("a"), { href: `/api/documents/${d.id}/file`, textContent: d.title });
    const cells = [a, `${(d.file_size / 1048576).toFixed(1)} MiB`, d.page_count ?? "", (d.security && d.security.verdict) || ""];
    for (const c of cells) { const td = document.createElement("td"); td.append(c); tr.append(td); }
    return tr;
  }));
}

const drop = document.getElementById("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); [...e.dataTransfer.files].forEach(upload); });
document.getElementById("picker").addEventListener("change", (e) => [...e.target.files].forEach(upload));
await ws();
refresh();
