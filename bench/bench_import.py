#!/usr/bin/env python
"""Import and search benchmark: text PDFs through the API (in-process), then searches.

    .venv/bin/python bench/bench_import.py            # 10 PDFs x 100 pages, 200 searches
    .venv/bin/python bench/bench_import.py --docs 3   # quicker

Each PDF (100 pages of ~480 words, words unique per page) is uploaded and completed;
its import time runs from /complete's answer to ``index_status: indexed`` (the queue,
text extraction and splitting in the reader's child, the nodes written to the FTS5
index). The import worker runs in this process (``temp_settings``: import_in_server),
as ``python -m backend.importer`` runs it in its own. Then ``GET /api/documents/search``
for words of random pages over all indexed pages: p50/p95 latency, and whether the right
page came first. Targets: import of a 100-page PDF <= 3 s; search p50 <= 50 ms over
1,000 pages. The index alone, at 0 to 100,000 pages: ``bench/bench_index.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from backend.app import create_app  # noqa: E402
from backend.settings import temp_settings  # noqa: E402
from tests.textpdf import make_text_pdf, page_word  # noqa: E402

IMPORT_TARGET_S, SEARCH_P50_TARGET_MS = 3.0, 50.0


async def run(docs: int, pages: int, searches: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-import-"))
    app = create_app(temp_settings(root, progress_interval_seconds=0))
    imports: list[float] = []
    async with app.router.lifespan_context(app):
        svc = app.state.services
        await svc.importer.ready()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
            for seed in range(docs):
                data = make_text_pdf(root / f"{seed}.pdf", pages, seed=seed, lines=40, words_per_line=12)
                r = await http.post("/api/documents/streaming/initiate",
                                    json={"filename": f"doc{seed}.pdf", "file_size": len(data)})
                s = r.json()
                cs = s["chunk_size"]
                for i in range(s["total_chunks"]):
                    await http.post(f"/api/documents/streaming/chunk/{s['session_id']}",
                                    data={"chunk_id": str(i)}, files={"file": ("b", data[i * cs:(i + 1) * cs])})
                r = await http.post(f"/api/documents/streaming/complete/{s['session_id']}")
                assert r.status_code == 200, r.text
                start = time.perf_counter()
                await svc.importer.drain(timeout=120)
                imports.append(time.perf_counter() - start)
                doc = (await http.get(f"/api/documents/{r.json()['document']['id']}")).json()
                assert doc["index_status"] == "indexed", doc
                print(f"import {seed + 1}/{docs}: {imports[-1]:.2f} s "
                      f"({svc.importer.index.node_count()} nodes indexed)", flush=True)
            rng = random.Random(0)
            latencies: list[float] = []
            right = 0
            for _ in range(searches):
                seed, page = rng.randrange(docs), rng.randrange(pages)
                q = f"{page_word(seed, page, rng.randrange(40))} report"
                start = time.perf_counter()
                r = await http.get("/api/documents/search", params={"q": q, "top_k": 5})
                latencies.append((time.perf_counter() - start) * 1000)
                hits = r.json()["hits"]
                right += bool(hits) and hits[0]["page"] == page + 1 and hits[0]["filename"] == f"doc{seed}.pdf"
    latencies.sort()
    return {
        "docs": docs, "pages_per_doc": pages, "indexed_pages": docs * pages,
        "import_s": {"first": round(imports[0], 3), "last": round(imports[-1], 3),
                     "median": round(statistics.median(imports), 3), "max": round(max(imports), 3)},
        "search_ms": {"p50": round(statistics.median(latencies), 2),
                      "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 2), "n": len(latencies)},
        "search_top1_correct": f"{right}/{searches}",
        "targets": {"import_s": IMPORT_TARGET_S, "search_p50_ms": SEARCH_P50_TARGET_MS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--searches", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(run(args.docs, args.pages, args.searches))
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "results" / "import.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["import_s"]["max"] <= IMPORT_TARGET_S and result["search_ms"]["p50"] <= SEARCH_P50_TARGET_MS
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
