"""The verdict on findings: defaults, configuration, and the generated corpus end to end."""

from __future__ import annotations

import json

import pytest

from backend.services.pdf.findings import FINDING_KINDS, Finding
from backend.services.pdf.inspect import inspect_pdf
from backend.services.pdf.scan import PdfStreamScanner
from backend.services.pdf.policy import DEFAULT_REJECT_KINDS, LIMIT_KINDS, SecurityPolicy
from tests.security_corpus import Sample, session_corpus


def f(kind: str) -> Finding:
    return Finding(kind, f"a {kind}")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample]:
    return session_corpus(tmp_path_factory)


def test_defaults() -> None:
    policy = SecurityPolicy()
    assert policy.reject_kinds == {"javascript", "launch", "xfa", "embedded_executable",
                                   "password_protected", "decompression_bomb", "resource_limit"} == DEFAULT_REJECT_KINDS
    assert policy.flag_kinds == set(FINDING_KINDS) - DEFAULT_REJECT_KINDS
    assert policy.level("embedded_file") == "flag"
    assert policy.level("embedded_executable") == "reject"


def test_verdict() -> None:
    policy = SecurityPolicy()
    assert policy.verdict([]) == "clean"
    assert policy.verdict([f("uri"), f("open_action")]) == "flagged"
    findings = [f("uri"), f("javascript"), f("launch")]
    assert policy.verdict(findings) == "rejected"
    assert [x.kind for x in policy.rejecting(findings)] == ["javascript", "launch"]
    assert [x.kind for x in policy.flagging(findings)] == ["uri"]
    assert policy.verdict([f("from_a_newer_scanner")]) == "flagged"  # unknown: never ignored


def test_from_lists() -> None:
    assert SecurityPolicy.from_lists() == SecurityPolicy()
    strict = SecurityPolicy.from_lists(reject=["javascript", " uri"])
    assert strict.verdict([f("uri")]) == "rejected" and strict.verdict([f("launch")]) == "flagged"
    quiet = SecurityPolicy.from_lists(reject=["javascript"], flag=[])
    assert quiet.verdict([f("uri"), f("xfa")]) == "clean"
    both = SecurityPolicy.from_lists(reject=["uri"], flag=["uri", "acroform"])
    assert both.flag_kinds == {"acroform"} and both.level("uri") == "reject"
    assert SecurityPolicy.from_lists(reject=[], flag=["decompression_bomb"]).level("decompression_bomb") == "reject"
    with pytest.raises(ValueError, match="javscript"):
        SecurityPolicy.from_lists(reject=["javscript"])


def test_to_dict() -> None:
    data = SecurityPolicy.from_lists(reject=["javascript"], flag=["uri"]).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["reject_kinds"] == sorted({"javascript"} | LIMIT_KINDS) and data["flag_kinds"] == ["uri"]
    assert "launch" in data["ignored_kinds"] and data["kinds"]["uri"] == FINDING_KINDS["uri"]


VERDICTS = {  # sample -> (streaming verdict, deep verdict or None when inspect_pdf raises)
    "clean_multipage": ("clean", "clean"), "clean_objstm": ("clean", "clean"),
    "clean_image_name_bytes": ("clean", "clean"),
    "js_open_action_objstm": ("rejected", "rejected"), "page_aa": ("rejected", "rejected"),
    "launch_objstm": ("rejected", "rejected"), "embedded_exe_objstm": ("rejected", "rejected"),
    "xfa_objstm": ("rejected", "rejected"), "uri_objstm": ("flagged", "flagged"),
    "submit_form": ("flagged", "flagged"), "embedded_txt": ("flagged", "flagged"),
    "obfuscated_names": ("rejected", "rejected"), "trailing_data": ("flagged", "clean"),
    "encrypted_empty_password": ("flagged", "flagged"),
    "encrypted_password": ("flagged", "rejected"), "bomb": ("clean", None),
}


def test_corpus_verdicts(corpus: dict[str, Sample]) -> None:
    policy = SecurityPolicy()
    for name, (streaming, deep) in VERDICTS.items():
        data = corpus[name].path.read_bytes()
        scanner = PdfStreamScanner()
        scanner.feed(data)
        scanner.finish()
        assert policy.verdict(scanner.findings) == streaming, name
        if deep is not None:
            assert policy.verdict(inspect_pdf(corpus[name].path).findings) == deep, name
