"""Property and fuzz tests of the ext-area record codec (p2k/fs/ffs/extattr.py) and the ACL
codecs (p2k/vfs/acl.py): arbitrary bytes never raise anything but a reported problem, and what
build_area writes parses back exactly, in both byte orders."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2k.fs.ffs.extattr import build_area, parse_area, record_size
from p2k.vfs import acl

names = st.binary(min_size=1, max_size=255).filter(lambda b: b"\0" not in b)
attrs = st.dictionaries(st.tuples(st.sampled_from([1, 2]), names), st.binary(max_size=300), max_size=30)


@given(attrs, st.sampled_from(["<", ">"]))
def test_build_parse_round_trip(a: dict[tuple[int, bytes], bytes], endian: str) -> None:
    raw = build_area(a, endian)
    assert len(raw) == sum(record_size(n, len(v)) for (_, n), v in a.items())
    assert len(raw) % 8 == 0
    got, problem = parse_area(raw, endian)
    assert problem is None and got == a and list(got) == list(a)


@given(st.binary(max_size=2048), st.sampled_from(["<", ">"]))
def test_parse_arbitrary_bytes(raw: bytes, endian: str) -> None:
    got, problem = parse_area(raw, endian)
    assert problem is None or isinstance(problem, str)
    for (ns, name), value in got.items():
        assert 0 <= ns < 256 and 1 <= len(name) <= 255 and len(value) <= len(raw)


@given(attrs, st.integers(0, 4000), st.integers(0, 255), st.sampled_from(["<", ">"]))
def test_damaged_area_keeps_the_records_before(a: dict[tuple[int, bytes], bytes], pos: int, byte: int,
                                               endian: str) -> None:
    raw = bytearray(build_area(a, endian))
    if not raw:
        return
    pos %= len(raw)
    raw[pos] = byte
    got, _ = parse_area(bytes(raw), endian)  # never raises; what it returns is well-formed
    assert all(isinstance(v, bytes) for v in got.values())


entries = st.lists(st.tuples(st.sampled_from(acl.TAGS), st.integers(0, 2**32 - 1), st.integers(0, 7)),
                   max_size=32)


@given(entries, st.sampled_from(["<", ">"]))
def test_acl_codecs(e: list[tuple[int, int, int]], endian: str) -> None:
    assert acl.decode_oldacl(acl.encode_oldacl(e, endian), endian) == e
    back = acl.decode_linux(acl.encode_linux(e))
    assert sorted((t, p) for t, _, p in back) == sorted((t, p) for t, _, p in e)


@given(st.binary(max_size=600))
def test_acl_decoders_on_garbage(raw: bytes) -> None:
    for fn in (acl.decode_linux, lambda b: acl.decode_oldacl(b, "<")):
        try:
            fn(raw)
        except OSError as ex:
            assert ex.errno in (errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP)


def test_acl_validate() -> None:
    x = acl.ACL_UNDEFINED_ID
    good = [(1, x, 6), (2, 5, 4), (4, x, 4), (0x10, x, 4), (0x20, x, 0)]
    acl.validate(good)
    for bad in (good[:1], [e for e in good if e[0] != 0x10], good + [(2, 5, 1)], good + [(0x40, 0, 0)]):
        with pytest.raises(OSError):
            acl.validate(bad)
