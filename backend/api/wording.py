"""Request validation errors in words for the person who sent the request.

pydantic says "file_size: Input should be greater than 0"; a person needs "the file is
empty". :func:`describe` turns one pydantic error into a sentence that names the field
as the client sent it; :data:`_SPECIAL` holds the few cases where the field's meaning
gives a better sentence than its name does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

_PLACES: Final = frozenset({"body", "query", "path", "header", "cookie"})

#: (field, pydantic error type) -> the sentence.
_SPECIAL: Final = {
    ("file_size", "greater_than"): "the file is empty: there is nothing to upload",
    ("q", "string_too_short"): "the search needs at least one word",
    ("q", "missing"): "the search needs at least one word (the q parameter)",
    ("expected_hash", "string_pattern_mismatch"): "expected_hash must be the file's SHA-256 as 64 hex digits",
    ("checksum", "string_pattern_mismatch"): "checksum must be the chunk's SHA-256 as 64 hex digits",
    ("client_id", "string_pattern_mismatch"): "client_id must be 1-128 characters of A-Z a-z 0-9 _ . : -",
    ("filename", "string_pattern_mismatch"): "filename must have at least one visible character after its last slash",
    ("filename", "string_too_short"): "filename is empty",
    ("doc_id", "greater_than_equal"): "there is no document with that id (ids start at 1)",
    ("doc_id", "less_than_equal"): "there is no document with that id",
}

#: pydantic error type -> a sentence about ``{field}`` (``ctx`` values by name).
_GENERIC: Final = {
    "missing": "{field} is required",
    "greater_than": "{field} must be more than {gt}",
    "greater_than_equal": "{field} must be at least {ge}",
    "less_than": "{field} must be less than {lt}",
    "less_than_equal": "{field} must be at most {le}",
    "string_too_short": "{field} must have at least {min_length} characters",
    "string_too_long": "{field} must have at most {max_length} characters",
    "string_pattern_mismatch": "{field} has characters that are not allowed here",
    "string_type": "{field} must be text",
    "int_parsing": "{field} must be a whole number",
    "int_type": "{field} must be a whole number",
    "int_from_float": "{field} must be a whole number",
    "bool_parsing": "{field} must be true or false",
    "bool_type": "{field} must be true or false",
    "float_parsing": "{field} must be a number",
    "extra_forbidden": "{field} is not a field this endpoint knows",
    "model_attributes_type": "the request body must be a JSON object",
    "dict_type": "{field} must be a JSON object",
    "list_type": "{field} must be a list",
    "json_invalid": "the request body is not valid JSON",
    "json_type": "the request body is not valid JSON",
}


def field_name(loc: Sequence[Any]) -> str:
    """The field as the client named it: the last part of ``loc`` that is not where it
    came from (``body``, ``query``...); list indexes are kept (``items[2]``)."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
        elif str(part) not in _PLACES:
            parts.append(str(part))
    return ".".join(parts) or "the request body"


def describe(error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence."""
    field = field_name(error.get("loc", ()))
    kind = str(error.get("type", ""))
    special = _SPECIAL.get((field.rsplit(".", 1)[-1], kind))
    if special is not None:
        return special
    template = _GENERIC.get(kind)
    ctx = dict(error.get("ctx") or {})
    if template is not None:
        try:
            return template.format(field=field, **ctx)
        except (KeyError, IndexError):
            pass
    message = str(error.get("msg", "is not valid"))
    return f"{field}: {message[0].lower() + message[1:] if message else 'is not valid'}"


def describe_all(errors: Sequence[Mapping[str, Any]]) -> str:
    """Every error, each once, in one message."""
    seen: list[str] = []
    for error in errors:
        text = describe(error)
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) or "the request is not valid"
