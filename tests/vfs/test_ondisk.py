"""p2k.ondisk: one declaration gives both byte orders, offsets, and a lossless round trip."""

from __future__ import annotations

import struct
import typing
from typing import Annotated, ClassVar

import pytest

from p2k import ondisk
from p2k.ondisk import I64, U16, U32, Fmt, Record


class Sample(Record):
    magic: U32
    count: U16
    pad: Annotated[bytes, Fmt("2s")]
    when: I64
    addrs: Annotated[list[int], Fmt("3i")]


class SampleOwnAnnotated(Record):
    """Sample again, declared with p2k.ondisk's run-time Annotated rather than typing's, and with
    class variables (text and object) that are not on-disk fields."""

    KIND: ClassVar[str] = "sample"
    magic: U32
    count: U16
    pad: ondisk.Annotated[bytes, Fmt("2s")]
    when: I64
    addrs: ondisk.Annotated[list[int], Fmt("3i")]



def test_own_annotated_declares_as_typings() -> None:
    assert ondisk.Annotated is not typing.Annotated  # the run time's stand-in (p2k.ondisk says why)
    assert SampleOwnAnnotated.FIELDS == Sample.FIELDS and SampleOwnAnnotated.OFFSETS == Sample.OFFSETS
    hint = ondisk.Annotated[bytes, Fmt("2s"), "x"]
    assert (hint.__origin__, hint.__metadata__) == (bytes, (Fmt("2s"), "x"))
    assert hint == ondisk.Annotated[bytes, Fmt("2s"), "x"] and hint != ondisk.Annotated[bytes, Fmt("3s")]
    with pytest.raises(TypeError, match="at least two arguments"):
        ondisk.Annotated[bytes]
    assert ondisk._is_classvar("ClassVar[int]") and ondisk._is_classvar(typing.ClassVar[int])
    assert not ondisk._is_classvar("U32") and not ondisk._is_classvar(U32)
    # the annotation texts the compiler gives back are read without eval, as eval would read them
    for text in ("Annotated[bytes, Fmt('16s')]", 'Annotated[list[int], Fmt("12q")]'):
        fast = ondisk._annotated_fmt(text, {})
        assert fast.__metadata__ == eval(text, vars(ondisk)).__metadata__  # noqa: S307
    assert ondisk._annotated_fmt("Annotated[bytes, Fmt('1' + 's')]", {}) is ondisk._MISSING  # left to eval
    assert ondisk._annotated_fmt("Annotated[bytes, Fmt('4s')]", {"Fmt": object}) is ondisk._MISSING
    # annotations as objects (a module without the __future__ import): typing's ClassVar is no field
    objs = type("Objs", (Record,), {"__annotations__": {"N": typing.ClassVar[int], "magic": U32}})
    assert objs.FIELDS == (("magic", "I"),)


def test_layout_matches_struct_rules() -> None:
    assert Sample.SIZE == struct.calcsize("<IH2sq3i") == 28
    assert Sample.OFFSETS == {"magic": 0, "count": 4, "pad": 6, "when": 8, "addrs": 16}


@pytest.mark.parametrize("endian", ["<", ">"])
def test_round_trip_both_orders(endian: str) -> None:
    rec = Sample(0x19540119, 7, b"\0\1", -5, [1, -2, 3])
    raw = rec.encode(endian)
    assert raw == struct.pack(endian + "IH2sq3i", 0x19540119, 7, b"\0\1", -5, 1, -2, 3)
    assert Sample.decode(b"xx" + raw, 2, endian) == rec
    buf = bytearray(40)
    rec.encode_into(buf, 4, endian)
    assert bytes(buf[4:32]) == raw


def test_wrong_array_length_is_refused() -> None:
    with pytest.raises(ValueError, match="addrs"):
        Sample(1, 1, b"\0\0", 0, [1]).encode()


def test_field_without_format_is_a_declaration_error() -> None:
    with pytest.raises(TypeError, match="needs a Fmt"):
        class Bad(Record):
            x: int


def test_update_field_patch_and_in_core_subclass() -> None:
    rec = Sample.zeroed()
    rec.update(magic=5, count=2)
    assert (rec.magic, rec.count) == (5, 2)
    with pytest.raises(AttributeError, match="cuont"):
        rec.update(cuont=3)  # a typo must not become an attribute that never reaches the disk
    buf = bytearray(rec.encode(">"))
    Sample.field("count", ">").pack_into(buf, Sample.OFFSETS["count"], 0x0102)
    assert Sample.decode(buf, 0, ">").count == 0x0102

    class InCore(Sample):
        where: int  # not on disk: the layout is Sample's

    assert InCore.FIELDS == Sample.FIELDS and InCore.SIZE == Sample.SIZE
    got = InCore.decode(buf, 0, ">")
    got.where = 7
    assert got.encode(">") == bytes(buf)
