"""Domain errors carry codes; the REST router maps every one of them to a status."""

from __future__ import annotations

import pickle

from backend import errors
from backend.api.errors import REST_STATUS, rest_headers, rest_status


def _subclasses(cls: type[errors.UploadError]) -> list[type[errors.UploadError]]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_every_code_has_a_rest_status_and_no_error_knows_http() -> None:
    classes = _subclasses(errors.UploadError)
    assert len(classes) >= 24
    for cls in classes:
        assert cls.code in REST_STATUS, cls
        assert not hasattr(cls, "status"), cls
    assert rest_status(errors.UploadError("?")) == 500
    assert rest_status(errors.OffsetMismatch("at 10", offset=10)) == 409


def test_headers_and_pickling() -> None:
    busy = errors.ServerBusy("full", retry_after=3)
    assert rest_headers(busy) == {"Retry-After": "3"} and busy.transient
    assert rest_headers(errors.Unauthorized("who?")) == {"WWW-Authenticate": 'Bearer realm="pdf-upload"'}
    refused = pickle.loads(pickle.dumps(errors.SecurityRejected("js", findings=[{"kind": "javascript"}])))
    assert refused.body() == {"success": False, "error": "security_rejected", "message": "js",
                              "findings": [{"kind": "javascript"}]}
