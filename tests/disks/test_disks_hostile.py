"""Damaged and hostile partition maps: a warning or a one-line error, never a traceback or a hang.

Hand-made maps with overlapping entries, entries past the end of the image, a NetBSD label with a
bad checksum and a loop of extended partitions go through ``p2k parts`` and ``p2k ls``; then
hypothesis damages real maps (sfdisk's MBR and EBR chain, sgdisk's GPT with its backup, a NetBSD
label packed from the format facts) and ``scan_volumes`` must come back, under a timer, with
volumes that all lie inside the image.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import diskimg as d
import pytest
from damage import deadline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2k.etfs.resolve import resolve
from p2k.etfs.volumes import scan_volumes
from p2k.fs.ffs.fs import probe
from p2k.hyper import FileObjBackend

P2K = str(Path(sys.executable).with_name("p2k"))
FUZZ_CASES = int(os.environ.get("P2K_FUZZ_CASES", "300"))


def mbr(entries: list[tuple[int, int, int]], boot: bytes = b"") -> bytes:
    """A boot record with (type, start, size) entries, packed here from the format facts."""
    sector = bytearray(512)
    sector[:len(boot)] = boot
    for i, (ptype, start, size) in enumerate(entries):
        struct.pack_into("<BBBBBBBBII", sector, 446 + 16 * i, 0, 0, 0, 0, ptype, 0, 0, 0, start, size)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def image(tmp: Path, name: str, pieces: dict[int, bytes], size: int = 4 * d.MiB) -> Path:
    path = tmp / name
    d.blank(path, size)
    for off, data in pieces.items():
        d.put(path, off, data)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([P2K, *args], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in r.stderr
    return r


HOSTILE = {
    "overlap": ({0: mbr([(0x83, 2048, 4096), (0x83, 4096, 2048)])}, "p2: overlaps p1"),
    "past-end": ({0: mbr([(0x83, 2048, 2048), (0xA9, 4096, 1 << 20)])}, "p2: bytes"),
    "bad-checksum": ({0: mbr([(0xA9, 2048, 4096)]),
                      2049 * 512: d.bsd_label([(2048, 2112, d.FS_BSDFFS)], bad_checksum=True)}, "bad checksum"),
    "ebr-loop": ({0: mbr([(0x83, 2048, 1024), (0x05, 4096, 4096)]),
                  4096 * 512: mbr([(0x83, 64, 512), (0x05, 0, 4096)])}, "loops back to sector 4096"),
    "ebr-no-signature": ({0: mbr([(0x05, 4096, 4096)])}, "no 0xAA55 signature"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_map_warns_and_skips(case: str, tmp_path: Path) -> None:
    pieces, warning = HOSTILE[case]
    img = image(tmp_path, f"{case}.img", pieces)
    r = run("parts", str(img))
    assert r.returncode == 0, r.stderr
    warnings = r.stderr.strip().splitlines()
    assert warnings and all(w.startswith(f"p2k parts: {img}: warning: ") for w in warnings)
    assert any(warning in w for w in warnings), warnings
    ls = run("ls", str(img), "/")
    assert ls.returncode != 0
    errors = [line for line in ls.stderr.strip().splitlines() if "warning:" not in line]
    assert len(errors) == 1 and errors[0].startswith(f"p2k ls: {img}: ")


def test_bad_label_partition_is_a_one_line_error(tmp_path: Path) -> None:
    pieces, _ = HOSTILE["bad-checksum"]
    img = image(tmp_path, "bad.img", pieces)
    r = run("ls", f"{img}:s1a", "/")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == f"p2k ls: {img}: no partition s1a (mbr map; partitions: p1) (ENOENT)"


def test_window_outside_the_image_is_refused(tmp_path: Path) -> None:
    img = image(tmp_path, "w.img", {})
    r = run("ls", f"{img}:@3m,2m", "/")
    assert r.returncode != 0 and "not inside the image" in r.stderr


# ---- fuzzing the map parsers ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    if not d.HAVE_TOOLS:
        pytest.skip("needs sfdisk and sgdisk")
    tmp = tmp_path_factory.mktemp("seeds")
    size = 2 * d.MiB
    logical = tmp / "logical.img"
    d.blank(logical, size)
    d.sfdisk(logical, "label: dos\nstart=64, size=64, type=a9\nstart=256, type=5\nstart=320, size=64, type=83\n"
                      "start=512, size=64, type=a6\nstart=1024, size=64, type=a5\n")
    d.put(logical, 65 * 512, d.bsd_label([(32, 80, d.FS_BSDFFS), (0, 0, 0), (64, 64, 0)]))
    d.put(logical, 1025 * 512, d.bsd_label([(16, 8, d.FS_BSDFFS), (0, 0, 0), (64, 0, 0)], nparts=8))
    d.put(logical, 513 * 512, d.openbsd_label([(16, 520, d.FS_BSDFFS)]))
    gpt = tmp / "gpt.img"
    d.blank(gpt, size)
    d.sgdisk(gpt, "-o", "-n1:0:+256K", "-t1:a503", "-n2:0:+256K", "-t2:a902")
    bare = tmp / "bare.img"
    d.blank(bare, size)
    d.put(bare, 512, d.bsd_label([(1024, 0, d.FS_BSDFFS), (512, 1024, d.FS_SWAP)], order=">"))
    return [p.read_bytes() for p in (logical, gpt, bare)]


def _regions(size: int) -> list[tuple[int, int]]:
    """Where the maps live: the first sectors (MBR, GPT header and entries, labels, EBRs) and the
    backup GPT at the end."""
    return [(0, 1536), (32 * 1024, 1024), (64 * 512, 1024), (256 * 512, 1024), (512 * 512, 1024),
            (1024 * 512, 1024), (size - 17 * 1024, 17 * 1024)]


map_damage = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 1 << 20),
                            st.sampled_from([1, 2, 4, 8]),
                            st.sampled_from([0, 1, 0x05, 0x0F, 0x80, 0xA5, 0xA6, 0xA9, 0xEE, 0xFF, 0xFFFF,
                                             0x7FFFFFFF, 0xFFFFFFFF, 0x82564557, 1 << 40, (1 << 64) - 1])),
                  min_size=1, max_size=8)


@settings(max_examples=FUZZ_CASES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 2), hits=map_damage)
def test_fuzz_scan_volumes(seeds: list[bytes], which: int, hits: list[tuple[int, int, int, int]]) -> None:
    buf = bytearray(seeds[which])
    regions = _regions(len(buf))
    for region, pos, width, value in hits:
        start, length = regions[region]
        off = start + pos % max(length - width, 1)
        buf[off:off + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    data = bytes(buf)
    with deadline(10):
        vm = scan_volumes(lambda off, n: data[off:off + n], len(data))
    for v in vm.volumes:
        assert 0 <= v.start and v.size > 0 and v.end <= len(data), v
        assert vm.find(v.name) is v
    # the whole resolver, through a file-like object as fsspec would hand it one: a window or OSError
    for name in (None, "p1", "s1a", "a", "p5"):
        backend = FileObjBackend(io.BytesIO(data), "fuzz.img")
        with deadline(10):
            try:
                target = resolve(backend, name, readonly=True, detect=probe)
            except OSError:
                continue
        assert 0 <= target.offset and target.offset + target.size <= len(data)
        target.backend.close()
