// The page's text helpers (node --test test/, after npm run build).
import assert from "node:assert/strict";
import { test } from "node:test";

import { formatBytes, formatDuration, markPieces, matchRanges, queryWords } from "../dist/text.js";

test("formatBytes and formatDuration: the CLI's strings too (tests/client/test_output.py)", () => {
  const mib = 1 << 20;
  for (const [n, shown] of [[0, "0 B"], [1023, "1023 B"], [1024, "1.0 KiB"], [1536, "1.5 KiB"], [10 * 1024, "10 KiB"],
                            [2 * mib, "2.0 MiB"], [40 * mib + 777, "40 MiB"], [1023 * mib, "1023 MiB"],
                            [1 << 30, "1.0 GiB"], [10_239, "10.0 KiB"]]) {
    assert.equal(formatBytes(n), shown);
  }
  for (const [s, shown] of [[0, "0 s"], [44.6, "45 s"], [125, "2 min 5 s"], [3600, "1 h 0 min"],
                            [3 * 3600 + 59 * 60 + 59, "3 h 59 min"], [-3, "0 s"]]) {
    assert.equal(formatDuration(s), shown);
  }
});

test("queryWords: letters and digits, lower-cased, longest first, once each", () => {
  assert.deepEqual(queryWords("Invoice  2026, invoice <b>"), ["invoice", "2026", "b"]);
  assert.deepEqual(queryWords("  ,;  "), []);
});

test("matchRanges: whole words that begin with a query word, any case", () => {
  const text = "Invoices: the INVOICE of 2026 (not an envoice)";
  assert.deepEqual(matchRanges(text, "invoice 2026").map(([a, b]) => text.slice(a, b)),
                   ["Invoices", "INVOICE", "2026"]);
  assert.deepEqual(matchRanges(text, ""), []);
  assert.deepEqual(matchRanges("Größe über", "grö"), [[0, 5]]);
});

test("markPieces: the passage in order, markup kept as text", () => {
  const text = "<script>alert(1)</script> total due";
  const pieces = markPieces(text, "script total");
  assert.equal(pieces.map((p) => p.text).join(""), text, "nothing lost or added");
  assert.deepEqual(pieces.filter((p) => p.mark).map((p) => p.text), ["script", "script", "total"]);
  assert.deepEqual(markPieces("abc", "zzz"), [{ text: "abc", mark: false }]);
});
