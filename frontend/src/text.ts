/**
 * The page's pure text helpers (node tests them): sizes and durations as the page and the
 * CLI write them (binary units), and where a search's words appear in a passage.
 *
 * Marking: the server's BM25 matches word stems, so a query word also marks the longer words it
 * begins ("invoice" marks "invoices"); case is ignored. The page builds text nodes and
 * `<mark>` elements from the ranges: the passage is never parsed as HTML.
 */

export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** The query's words (letters and digits), lower-cased, longest first, without repeats. */
export function queryWords(query: string): string[] {
  const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return [...new Set(words)].sort((a, b) => b.length - a.length);
}

/** [start, end) ranges of `text` to mark: whole words that begin with a query word. */
export function matchRanges(text: string, query: string): Array<[number, number]> {
  const words = queryWords(query);
  if (words.length === 0) return [];
  const ranges: Array<[number, number]> = [];
  for (const m of text.matchAll(/[\p{L}\p{N}]+/gu)) {
    const word = m[0].toLowerCase();
    if (words.some((w) => word.startsWith(w))) ranges.push([m.index, m.index + m[0].length]);
  }
  return ranges;
}

/** `text` cut into pieces, each marked or not, in order (joined, they are `text`). */
export function markPieces(text: string, query: string): Array<{ text: string; mark: boolean }> {
  const pieces: Array<{ text: string; mark: boolean }> = [];
  let at = 0;
  for (const [start, end] of matchRanges(text, query)) {
    if (start > at) pieces.push({ text: text.slice(at, start), mark: false });
    pieces.push({ text: text.slice(start, end), mark: true });
    at = end;
  }
  if (at < text.length) pieces.push({ text: text.slice(at), mark: false });
  return pieces;
}
