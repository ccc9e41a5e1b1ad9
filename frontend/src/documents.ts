/**
 * The documents part of the page: a paged list (Prev/Next over the API's `limit` and
 * `offset`, one row more than shown is asked for to know whether a next page exists), a
 * delete button per row, the search over every document, and a document's own view at
 * `#document/ID`: its metadata, the security verdict with findings, the index status, a
 * search within it, download and delete.
 *
 * Search passages are shown with the query's words in `<mark>`, built as text nodes (the
 * passages come from PDFs: never parsed as HTML).
 */

import { ApiError, type DocumentInfo, type SearchHit, type UploadClient } from "@pdf-upload/client";
import { byId, el } from "./dom";
import { formatBytes, markPieces } from "./text";

const INDEX_LABEL: Record<string, string> = {
  pending: "queued", importing: "importing…", indexed: "searchable", no_text: "no text", failed: "import failed",
};
const FINDINGS_SHOWN = 50;
const CONFIRM_MS = 4000;
const VIEW_HASH = /^#document\/(\d+)$/;

/** The passage with the query's words marked. */
function marked(text: string, query: string): HTMLElement {
  return el("div", { className: "passage" },
    ...markPieces(text, query).map((p) => (p.mark ? el("mark", {}, p.text) : p.text)));
}

/** A button that deletes on a second click within a few seconds (no modal dialog). */
function deleteButton(action: () => Promise<void>, onError: (err: unknown) => void): HTMLButtonElement {
  const button = el("button", { type: "button", className: "delete", textContent: "Delete" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const disarm = (): void => {
    delete button.dataset["confirm"];
    button.textContent = "Delete";
  };
  button.addEventListener("click", () => {
    if (button.dataset["confirm"] !== "yes") {
      button.dataset["confirm"] = "yes";
      button.textContent = "Really delete?";
      timer = setTimeout(disarm, CONFIRM_MS);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    button.textContent = "Deleting…";
    action().catch((err: unknown) => {
      button.disabled = false;
      disarm();
      onError(err);
    });
  });
  return button;
}

export class Documents {
  private offset = 0;
  private refreshes = 0;
  private viewed: number | null = null;
  private readonly body = byId("documents").querySelector("tbody")!;
  private readonly view = byId("document-view");

  constructor(private readonly client: UploadClient, private readonly pageSize: number,
              private readonly onUnauthorized: () => void) {
    byId("docs-prev").addEventListener("click", () => this.go(this.offset - this.pageSize));
    byId("docs-next").addEventListener("click", () => this.go(this.offset + this.pageSize));
    this.searchForm(byId<HTMLFormElement>("search-form"), byId<HTMLInputElement>("search-input"),
                    byId("search-results"), () => undefined);
    addEventListener("hashchange", () => void this.route());
  }

  /** Read the address: `#document/ID` opens that document's view. */
  async start(): Promise<void> {
    await Promise.all([this.refresh(), this.route()]);
  }

  /** A link that downloads a stored PDF; with a key, through `fetch` (a plain link cannot send it). */
  link(id: number, text: string, filename?: string): HTMLAnchorElement {
    const link = el("a", { href: this.client.documentUrl(id), textContent: text });
    if (filename) {
      link.title = filename;
      link.setAttribute("download", filename);
    }
    if (this.client.apiKey) {
      link.addEventListener("click", (e) => {
        e.preventDefault();
        this.client.download(id).then((blob) => {
          const url = URL.createObjectURL(blob);
          const save = el("a", { href: url });
          if (filename) save.download = filename;
          else save.target = "_blank";
          save.click();
          setTimeout(() => URL.revokeObjectURL(url), 60_000);
        }).catch((err: unknown) => this.failed(err));
      });
    }
    return link;
  }

  /** A link to a document's view. */
  viewLink(id: number, text: string): HTMLAnchorElement {
    return el("a", { href: `#document/${id}`, className: "open", textContent: text });
  }

  /** The current page of the list (and the open view, whose index status may have moved). */
  async refresh(): Promise<void> {
    // Refreshes overlap (a delete, an import finishing, Next): only the latest one renders.
    const mine = ++this.refreshes;
    let offset = this.offset;
    let docs: DocumentInfo[];
    try {
      docs = await this.client.documents(this.pageSize + 1, offset);
      if (docs.length === 0 && offset > 0) { // the last row of the last page was deleted
        offset = Math.max(0, offset - this.pageSize);
        docs = await this.client.documents(this.pageSize + 1, offset);
      }
    } catch (err) {
      if (mine === this.refreshes) this.failed(err);
      return;
    }
    if (mine !== this.refreshes) return;
    this.offset = offset;
    byId("documents-message").textContent = "";
    const more = docs.length > this.pageSize;
    const shown = docs.slice(0, this.pageSize);
    this.body.replaceChildren(...shown.map((d) => this.row(d)));
    byId("documents-empty").hidden = shown.length > 0;
    byId("documents").hidden = shown.length === 0;
    const pager = byId("docs-pager");
    pager.hidden = this.offset === 0 && !more;
    byId<HTMLButtonElement>("docs-prev").disabled = this.offset === 0;
    byId<HTMLButtonElement>("docs-next").disabled = !more;
    byId("docs-range").textContent = shown.length
      ? `${this.offset + 1}–${this.offset + shown.length}` : "";
    pager.dataset["offset"] = String(this.offset);
    if (this.viewed !== null && !this.view.hidden) await this.open(this.viewed, false);
  }

  private go(offset: number): void {
    this.offset = Math.max(0, offset);
    void this.refresh();
  }

  private row(d: DocumentInfo): HTMLTableRowElement {
    const verdict = d.security?.verdict ?? "";
    const download = this.link(d.id, "Download", d.filename);
    download.className = "download";
    const row = el("tr", {},
      el("td", { className: "title" }, this.viewLink(d.id, d.title)),
      el("td", { className: "num" }, formatBytes(d.file_size)),
      el("td", { className: "num" }, d.page_count != null ? String(d.page_count) : "—"),
      el("td", { className: verdict ? `verdict-${verdict}` : "" }, verdict || "—"),
      el("td", { className: `index-${d.index_status ?? "unknown"}` }, INDEX_LABEL[d.index_status ?? ""] ?? "—"),
      el("td", { className: "num" }, new Date(d.created_at).toLocaleString()),
      el("td", { className: "row-actions" }, download, deleteButton(() => this.remove(d.id), (e) => this.failed(e))));
    row.dataset["documentId"] = String(d.id);
    row.dataset["sha256"] = d.sha256 ?? "";
    return row;
  }

  private async remove(id: number): Promise<void> {
    try {
      await this.client.deleteDocument(id);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === "not_found")) throw err; // gone already: as good as deleted
    }
    if (this.viewed === id) location.hash = "";
    await this.refresh();
  }

  private failed(err: unknown): void {
    if (err instanceof ApiError && err.code === "unauthorized") this.onUnauthorized();
    else byId("documents-message").textContent = `Failed: ${(err as Error).message ?? String(err)}`;
  }

  // -- search ---------------------------------------------------------------------------

  /** Wire a search form: its results are passages with the words marked; `documentId()`
   * limits it to one document. */
  private searchForm(form: HTMLFormElement, input: HTMLInputElement, results: HTMLElement,
                     documentId: () => number | undefined): void {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const q = input.value.trim();
      results.hidden = q === "";
      if (!q) {
        results.replaceChildren();
        return;
      }
      const within = documentId();
      results.replaceChildren(el("p", { className: "empty" }, "Searching…"));
      results.dataset["state"] = "busy";
      try {
        const hits = await this.client.search(q, within === undefined ? 10 : 20, undefined, within);
        results.replaceChildren(...this.hits(hits, q, within !== undefined));
      } catch (err) {
        const msg = err instanceof ApiError && err.code === "search_unavailable"
          ? "Search not available yet." : `Search failed: ${(err as Error).message}`;
        results.replaceChildren(el("p", { className: "empty search-message" }, msg));
      } finally {
        results.dataset["state"] = "done";
      }
    });
  }

  private hits(hits: SearchHit[], q: string, within: boolean): HTMLElement[] {
    if (hits.length === 0) return [el("p", { className: "empty" }, `No matches for “${q}”.`)];
    return [
      el("div", { className: "hits-head" }, `${hits.length} passage${hits.length === 1 ? "" : "s"} for “${q}”`),
      ...hits.slice(0, 50).map((h) => el("div", { className: "hit" },
        within ? el("span", { className: "where" }, h.page != null ? `page ${h.page}` : "")
          : this.viewLink(h.document_id, String(h.title ?? `Document ${h.document_id}`)),
        within ? "" : el("span", { className: "where" }, h.page != null ? ` · page ${h.page}` : ""),
        marked(String(h.text ?? ""), q))),
    ];
  }

  // -- one document's view --------------------------------------------------------------

  private async route(): Promise<void> {
    const m = VIEW_HASH.exec(location.hash);
    if (m) await this.open(Number(m[1]), true);
    else this.close();
  }

  private close(): void {
    this.viewed = null;
    this.view.hidden = true;
    this.view.replaceChildren();
    byId("documents-section").hidden = false;
  }

  private async open(id: number, fresh: boolean): Promise<void> {
    let doc: DocumentInfo;
    try {
      doc = await this.client.document(id);
    } catch (err) {
      if (err instanceof ApiError && err.code === "unauthorized") return this.onUnauthorized();
      this.viewed = id;
      this.show(el("p", { className: "empty" }, err instanceof ApiError && err.code === "not_found"
        ? "This document does not exist (any more)." : `Failed: ${(err as Error).message}`));
      return;
    }
    if (!fresh && this.viewed === id) { // a refresh: keep the search box and its results
      this.view.querySelector(".doc-index")?.replaceWith(this.indexStatus(doc));
      return;
    }
    this.viewed = id;
    this.show(...this.details(doc));
    if (fresh) this.view.scrollIntoView({ block: "start" });
  }

  private show(...children: HTMLElement[]): void {
    this.view.replaceChildren(el("a", { href: "#", className: "back", textContent: "← All documents" }), ...children);
    this.view.hidden = false;
    byId("documents-section").hidden = true;
  }

  private details(doc: DocumentInfo): HTMLElement[] {
    const sec = doc.security ?? {};
    const verdict = sec.verdict ?? "unknown";
    const findings = sec.findings ?? [];
    const meta: Array<[string, string]> = [
      ["File", doc.filename], ["Size", `${formatBytes(doc.file_size)} (${doc.file_size.toLocaleString("en")} bytes)`],
      ["Pages", doc.page_count != null ? String(doc.page_count) : "—"], ["PDF version", doc.pdf_version ?? "—"],
      ["Added", new Date(doc.created_at).toLocaleString()], ["SHA-256", doc.sha256 ?? "—"],
    ];
    if (doc.original_filename) meta.splice(1, 0, ["Sent as", doc.original_filename]);
    const facts = [sec.encrypted ? "encrypted" : "", sec.damaged ? "damaged (repaired by qpdf)" : ""].filter(Boolean);
    const security = el("div", { className: "doc-security" },
      el("h3", {}, "Security: ", el("span", { className: `verdict verdict-${verdict}` }, verdict)),
      facts.length ? el("p", { className: "sub" }, facts.join(", ")) : "",
      findings.length
        ? el("ul", { className: "findings" }, ...findings.slice(0, FINDINGS_SHOWN).map((f) =>
            el("li", {}, el("span", { className: "kind" }, f.kind), `: ${f.detail}`)),
            findings.length > FINDINGS_SHOWN ? el("li", {}, `and ${findings.length - FINDINGS_SHOWN} more`) : "")
        : el("p", { className: "sub" }, "No findings."));
    security.dataset["verdict"] = verdict;
    const input = el("input", { type: "search", className: "doc-search-input", placeholder: "Search in this document" });
    input.setAttribute("aria-label", "Search in this document");
    const form = el("form", { className: "doc-search-form" }, input, el("button", { type: "submit" }, "Search"));
    form.setAttribute("role", "search");
    const results = el("div", { className: "doc-search-results" });
    results.hidden = true;
    this.searchForm(form, input, results, () => doc.id);
    const download = this.link(doc.id, "Download", doc.filename);
    download.className = "button download";
    const root = el("div", { className: "card doc-view" },
      el("div", { className: "doc-head" }, el("h2", {}, doc.title),
         el("span", { className: "actions" }, download,
            deleteButton(() => this.remove(doc.id), (e) => this.failed(e)))),
      el("dl", { className: "doc-meta" }, ...meta.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      security, this.indexStatus(doc), form, results);
    root.dataset["documentId"] = String(doc.id);
    root.dataset["verdict"] = verdict;
    return [root];
  }

  private indexStatus(doc: DocumentInfo): HTMLElement {
    const status = doc.index_status ?? "unknown";
    const node = el("p", { className: `doc-index index-${status}` },
      "Search index: ", el("strong", {}, INDEX_LABEL[status] ?? status),
      doc.index_error ? ` (${doc.index_error})` : "");
    node.dataset["status"] = status;
    return node;
  }
}
