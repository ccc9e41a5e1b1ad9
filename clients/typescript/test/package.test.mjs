// The package as another app sees it: imported by its name (Node resolves a package's
// own name through its "exports"), with type declarations beside the code.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

test("imported by name, the package exports the client and its types", async () => {
  const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.name, "@pdf-upload/client");
  assert.deepEqual(Object.keys(pkg.dependencies ?? {}), [], "no runtime dependencies");
  const mod = await import("@pdf-upload/client");
  for (const name of ["UploadClient", "Upload", "ProgressSocket", "ApiError", "SpeedMeter", "SessionStore"]) {
    assert.equal(typeof mod[name], "function", name);
  }
  const types = await readFile(new URL(`../${pkg.exports["."].types}`, import.meta.url), "utf8");
  for (const decl of ["export declare class UploadClient", "export interface UploadSnapshot", "export interface RetryWait"]) {
    assert.ok(types.includes(decl), decl);
  }
});

test("used from node: an upload through fetch, no browser needed", async () => {
  const { UploadClient } = await import("@pdf-upload/client");
  const calls = [];
  const fetchStub = async (url, init) => {
    calls.push(`${init.method} ${new URL(url).pathname}`);
    if (url.endsWith("/initiate")) {
      return new Response(JSON.stringify({ session_id: "s", upload_url: "/u", chunk_size: 4, total_chunks: 2,
                                           expires_at: "", websocket_room: "", client_id: "app" }), { status: 201 });
    }
    if (url.includes("/chunk/")) return new Response(JSON.stringify({ success: true }), { status: 200 });
    return new Response(JSON.stringify({ document: { id: 5, title: "a" }, duplicate: false }), { status: 200 });
  };
  const client = new UploadClient({ baseUrl: "http://server:8000", clientId: "app", fetch: fetchStub, storage: null });
  const file = new File([new TextEncoder().encode("%PDF-1.7")], "a.pdf", { lastModified: 1 });
  const done = await client.upload(file).start();
  assert.equal(done.document.id, 5);
  assert.deepEqual(calls.slice(0, 1), ["POST /api/documents/streaming/initiate"]);
  assert.equal(calls.filter((c) => c.includes("/chunk/")).length, 2);
});
