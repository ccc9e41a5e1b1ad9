"""OpenAPI links: which answer feeds which request.

A session's id (from ``/initiate``) goes to the chunk, ``/complete``, ``/resume`` and
``/cancel`` requests. Clients read the workflow from ``/docs``; Schemathesis follows
these links to test sequences of calls on real sessions (tests/faults/test_schema.py).
There is no link from ``/complete`` to the document endpoints on purpose: Schemathesis
would start its sequences at ``/complete`` (a POST with links out) with made-up session
ids, and never at ``/initiate``.
"""

from __future__ import annotations

from typing import Any

STREAMING = "#/paths/~1api~1documents~1streaming"
SESSION_ID = "$response.body#/session_id"

INITIATE_LINKS: dict[str, Any] = {"links": {
    "SendChunk": {"operationRef": f"{STREAMING}~1chunk~1{{session_id}}/post", "parameters": {"session_id": SESSION_ID}},
    "Complete": {"operationRef": f"{STREAMING}~1complete~1{{session_id}}/post",
                 "parameters": {"session_id": SESSION_ID}},
    "Resume": {"operationRef": f"{STREAMING}~1resume/post", "requestBody": {"session_id": SESSION_ID}},
    "Cancel": {"operationRef": f"{STREAMING}~1cancel~1{{session_id}}/post", "parameters": {"session_id": SESSION_ID}},
}}
