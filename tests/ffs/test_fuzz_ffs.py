"""Fuzzing the FFS parsers with hypothesis: structured damage to real images, then a full walk.

Each case takes a pristine image made by the real ``makefs``, writes a handful of hostile values
into its superblock, cylinder groups, inodes, an indirect block or directory blocks — bytes flipped,
or 16/32/64-bit fields set to the values parsers get wrong (0, 1, -1, sign bits, block sizes,
huge counts) — then mounts it and walks and reads everything under a timer. The only acceptable
outcomes are success or OSError; a hang or any other exception is a finding, and findings are
kept below as ``@example`` regression cases.

CI runs ``FUZZ_CASES`` per image (2 images, ≥ 2,000 cases in all); ``P2K_FUZZ_CASES=50000`` (with
two images: 100,000 cases) is the long run.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest
from damage import deadline, regions, tolerant_walk
from ffs_tree import make_tree, makefs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")

FUZZ_CASES = int(os.environ.get("P2K_FUZZ_CASES", "1000"))
KINDS = ("superblock", "cg", "inode", "indirect", "directory")
INTERESTING = (0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0x1FF, 0x200, 0x1000, 0x2000, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


class Image:
    def __init__(self, path: Path, endian: str) -> None:
        self.path = path
        self.raw = path.read_bytes()
        self.endian = "<" if endian == "le" else ">"
        self.spans = regions(path)
        self.work = path.with_suffix(".fuzz")


@pytest.fixture(scope="module")
def fuzz_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image]:
    d = tmp_path_factory.mktemp("fuzz")
    tree = make_tree(d / "tree", bigdir=40, dindir_size=0, devices=False)
    return {
        "ufs1-le": Image(makefs(d / "u1.img", tree, version=1, endian="le", bsize=4096, fsize=512), "le"),
        "ufs2-be": Image(makefs(d / "u2.img", tree, version=2, endian="be", bsize=8192, fsize=1024), "be"),
    }


mutation = st.tuples(
    st.sampled_from(("xor8", "u16", "u32", "u64")),
    st.integers(min_value=0, max_value=1 << 30),  # which span / where in it (reduced modulo)
    st.integers(min_value=0, max_value=1 << 30),
    st.one_of(st.sampled_from(INTERESTING), st.integers(min_value=0, max_value=(1 << 64) - 1)),
)


def apply(img: Image, kind: str, muts: list[tuple[str, int, int, int]]) -> bytes:
    data = bytearray(img.raw)
    spans = img.spans[kind]
    for how, which, where, value in muts:
        start, length = spans[which % len(spans)]
        width = {"xor8": 1, "u16": 2, "u32": 4, "u64": 8}[how]
        off = start + (where % max(length - width + 1, 1))
        if how == "xor8":
            data[off] ^= (value % 255) + 1
        else:
            fmt = img.endian + {"u16": "H", "u32": "I", "u64": "Q"}[how]
            struct.pack_into(fmt, data, off, value % (1 << (8 * width)))
    return bytes(data)


def check(img: Image, kind: str, muts: list[tuple[str, int, int, int]]) -> None:
    img.work.write_bytes(apply(img, kind, muts))
    with deadline(10):
        tolerant_walk(img.work)  # only OSError may escape the kernel; anything else fails here


@pytest.mark.parametrize("name", ["ufs1-le", "ufs2-be"])
def test_fuzz_ffs_parsers(fuzz_images: dict[str, Image], name: str) -> None:
    img = fuzz_images[name]

    @settings(max_examples=FUZZ_CASES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(KINDS), muts=st.lists(mutation, min_size=1, max_size=8))
    def case(kind: str, muts: list[tuple[str, int, int, int]]) -> None:
        check(img, kind, muts)

    case()
