"""API keys: parsing, owners, constant-time lookup, and when the server may listen publicly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from backend.errors import Unauthorized
from backend.services.auth import SINGLE_OWNER, KeyConfigError, KeyRing, bind_refusal, is_loopback
from backend.settings import temp_settings


def test_keys_from_the_setting_and_a_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# comment\n\nfile-key-0123456789:carol\nrotated-key-0123456789:alice\n")
    ring = KeyRing.from_settings(temp_settings(tmp_path, api_keys="key1:alice, key2:bob", api_keys_file=keys))
    assert ring.enabled and ring.owners == {"alice", "bob", "carol"}
    assert [ring.owner_of(k) for k in ("key1", "key2", "file-key-0123456789", "rotated-key-0123456789")] == \
        ["alice", "bob", "carol", "alice"]
    assert ring.weak_keys == 2  # key1, key2: fine for a demo, warned about at start
    for bad in (None, "", "key", "key1 ", "KEY1", "alice"):
        with pytest.raises(Unauthorized):
            ring.owner_of(bad)


def test_no_keys_is_one_owner(tmp_path: Path) -> None:
    ring = KeyRing.from_settings(temp_settings(tmp_path))
    assert not ring.enabled and ring.owner_of(None) == SINGLE_OWNER and ring.owner_of("whatever") == SINGLE_OWNER


@pytest.mark.parametrize("value", ["justakey", ":alice", "key:", "key:al ice", "a key:alice", "key:" + "x" * 65])
def test_malformed_entries_stop_the_server(tmp_path: Path, value: str) -> None:
    with pytest.raises(KeyConfigError):
        KeyRing.from_settings(temp_settings(tmp_path, api_keys=value))


def test_one_key_for_two_owners_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="two owners"):
        KeyRing.from_settings(temp_settings(tmp_path, api_keys="same-key:alice,same-key:bob"))


def test_a_missing_keys_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="STREAMING_API_KEYS_FILE"):
        KeyRing.from_settings(temp_settings(tmp_path, api_keys_file=tmp_path / "nope"))


def test_keys_never_show_in_settings_repr(tmp_path: Path) -> None:
    settings = temp_settings(tmp_path, api_keys="very-secret-key-123:alice")
    assert isinstance(settings.api_keys, SecretStr) and "very-secret-key-123" not in repr(settings)


@pytest.mark.parametrize(("host", "loop"), [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                            ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                            ("::", False), ("192.168.1.5", False), ("example.org", False)])
def test_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_bind_refusal(tmp_path: Path) -> None:
    no_keys = temp_settings(tmp_path)
    assert bind_refusal(KeyRing.from_settings(no_keys), no_keys, "127.0.0.1") is None
    message = bind_refusal(KeyRing.from_settings(no_keys), no_keys, "0.0.0.0")
    assert message is not None and "STREAMING_ALLOW_PUBLIC_WITHOUT_KEYS" in message
    allowed = temp_settings(tmp_path, allow_public_without_keys=True)
    assert bind_refusal(KeyRing.from_settings(allowed), allowed, "0.0.0.0") is None
    keyed = temp_settings(tmp_path, api_keys="k-0123456789abcdef:alice")
    assert bind_refusal(KeyRing.from_settings(keyed), keyed, "0.0.0.0") is None
