"""The decompression-bomb guard measures what streams really decode to (issue: hardening,
point 3): ordinary scans and long images pass, real bombs are refused with a message that
names the object, the filters, the size reached and the limit."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pikepdf
import pytest
from pikepdf import Name

from backend import errors
from backend.services.pdf.inspect import InspectLimits, inspect_pdf
from tests import hostile_corpus
from tests.services.pdf.test_filters import lzw_encode, lzw_zero_bomb, run_length_encode

MIB = 1 << 20


def one_stream_pdf(path: Path, data: bytes, **dictionary: object) -> Path:
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(612, 792))
    page.obj.Contents = pdf.make_stream(data, **dictionary)
    pdf.save(path, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    return path


def test_image_codecs_are_not_sized_from_their_declared_dimensions(tmp_path: Path) -> None:
    assert inspect_pdf(hostile_corpus.scanned_page(tmp_path / "scan.pdf")).kinds == set()
    assert inspect_pdf(hostile_corpus.long_image(tmp_path / "strip.pdf")).kinds == set()
    huge = inspect_pdf(hostile_corpus.huge_declared_image(tmp_path / "huge.pdf"))
    assert huge.kinds == {"huge_image"}
    detail = next(f.detail for f in huge.findings)
    assert "100000 x 100000" in detail and "30000000000 bytes" in detail


def test_a_flate_bomb_is_refused_naming_object_filter_reached_and_limit(tmp_path: Path) -> None:
    path = hostile_corpus.flate_bomb(tmp_path / "bomb.pdf", decoded_mib=64)
    with pytest.raises(errors.SecurityRejected) as caught:
        inspect_pdf(path)
    message = caught.value.message
    assert message.startswith("decompression bomb: object 4 (FlateDecode) decodes past its limit of ")
    assert "it reached" in message and "500 times its encoded size" in message
    assert "STREAMING_MAX_COMPRESSION_RATIO" in message
    [finding] = caught.value.body()["findings"]
    assert finding["kind"] == "decompression_bomb" and "object 4" in finding["detail"]
    with pytest.raises(errors.SecurityRejected, match=r"limit is the 1048576-byte limit per decoded stream "
                                                      r"\(STREAMING_MAX_STREAM_MB\)"):
        inspect_pdf(path, InspectLimits(max_stream_bytes=MIB, max_ratio=0))


def test_lzw_is_decoded_not_bounded_by_its_worst_case(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(300_000)  # worst case 1300x: past 256 MiB, real size 300 KB
    ok = one_stream_pdf(tmp_path / "lzw.pdf", lzw_encode(data), Filter=Name.LZWDecode)
    assert inspect_pdf(ok).largest_stream == len(data)
    bomb = lzw_zero_bomb(cycles=40)  # ~300 MB of zeros from ~220 KB
    refused = one_stream_pdf(tmp_path / "lzw-bomb.pdf", bomb, Filter=Name.LZWDecode)
    with pytest.raises(errors.SecurityRejected, match=r"object \d+ \(LZWDecode\) decodes past"):
        inspect_pdf(refused)


def test_run_length_and_chains(tmp_path: Path) -> None:
    runs = run_length_encode(bytes(2 * MIB))
    path = one_stream_pdf(tmp_path / "rl.pdf", runs, Filter=Name.RunLengthDecode)
    assert inspect_pdf(path).largest_stream == 2 * MIB
    with pytest.raises(errors.SecurityRejected, match=r"\(RunLengthDecode\) decodes past its limit of 1048576"):
        inspect_pdf(path, InspectLimits(max_stream_bytes=MIB))
    chain = zlib.compress(bytes(2 * MIB).hex().encode())  # Flate over ASCIIHex: 4 MiB, then 2 MiB
    path = one_stream_pdf(tmp_path / "chain.pdf", chain,
                          Filter=pikepdf.Array([Name.FlateDecode, Name.ASCIIHexDecode]))
    assert inspect_pdf(path).largest_stream == 2 * MIB
    with pytest.raises(errors.SecurityRejected, match=r"\(FlateDecode/ASCIIHexDecode\)"):
        inspect_pdf(path, InspectLimits(max_stream_bytes=MIB))


def test_a_declared_decoded_length_is_not_a_reason_to_refuse(tmp_path: Path) -> None:
    path = one_stream_pdf(tmp_path / "dl.pdf", zlib.compress(b"q Q " * 100), Filter=Name.FlateDecode,
                          DL=10**12)
    assert inspect_pdf(path).largest_stream == 400


def test_flate_before_an_image_codec_is_measured_and_the_image_is_not(tmp_path: Path) -> None:
    jpeg = hostile_corpus._jpeg(640, 480)
    pdf = pikepdf.new()
    hostile_corpus._image_page(pdf, zlib.compress(jpeg), 640, 480,
                               filters=pikepdf.Array([Name.FlateDecode, Name.DCTDecode]))
    path = tmp_path / "flate-jpeg.pdf"
    pdf.save(path, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    assert inspect_pdf(path).largest_stream == len(jpeg)
