"""Fuzzing the container readers: damaged qcow2, VMDK, VHD, VHDX, gzip and xz files.

Small containers made by qemu-img, gzip and xz get hostile values written into their headers and
tables (and anywhere in the first and last KiB); opening them and reading across the disk may only
succeed or fail with OSError, under a timer — never another exception, never a hang.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from damage import deadline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2k.hyper import open_backend

pytestmark = pytest.mark.skipif(not (shutil.which("qemu-img") and shutil.which("xz")), reason="needs qemu-img, xz")
FUZZ_CASES = int(os.environ.get("P2K_FUZZ_CASES", "300"))
FORMATS = ("qcow2", "qcow2-c", "vmdk", "vmdk-stream", "vhd", "vhdx", "gzip", "xz")


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("fuzzc")
    raw = tmp / "disk.img"
    raw.write_bytes(b"".join(bytes([i]) * 4096 + os.urandom(4096) for i in range(128)))  # 1 MiB
    out: dict[str, bytes] = {}
    qemu = {"qcow2": ["-O", "qcow2"], "qcow2-c": ["-c", "-O", "qcow2"], "vmdk": ["-O", "vmdk"],
            "vmdk-stream": ["-O", "vmdk", "-o", "subformat=streamOptimized"],
            "vhd": ["-O", "vpc", "-o", "force_size=on"], "vhdx": ["-O", "vhdx"]}
    for name, args in qemu.items():
        dst = tmp / name
        subprocess.run(["qemu-img", "convert", *args, str(raw), str(dst)], check=True, capture_output=True)
        out[name] = dst.read_bytes()
    out["gzip"] = subprocess.run(["gzip", "-c", str(raw)], capture_output=True, check=True).stdout
    out["xz"] = subprocess.run(["xz", "-T2", "--block-size=256KiB", "-c", str(raw)], capture_output=True,
                               check=True).stdout
    return out


hits = st.lists(st.tuples(st.integers(0, 1 << 30), st.sampled_from([1, 2, 4, 8]),
                          st.sampled_from([0, 1, 0x7F, 0xFF, 0x200, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF,
                                           1 << 40, (1 << 62) | 5, (1 << 63) | 0x10000, (1 << 64) - 1]),
                          st.booleans()),
                min_size=1, max_size=6)


@settings(max_examples=FUZZ_CASES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(FORMATS), damage=hits)
def test_fuzz_container_readers(containers: dict[str, bytes], tmp_path: Path, fmt: str,
                                damage: list[tuple[int, int, int, bool]]) -> None:
    buf = bytearray(containers[fmt])
    for pos, width, value, big in damage:
        # most hits land in the first 4 KiB (headers, L1, BAT, descriptors), the rest anywhere
        off = pos % 4096 if pos % 3 else pos % max(len(buf) - width, 1)
        off = min(off, len(buf) - width)
        buf[off:off + width] = (value % (1 << (8 * width))).to_bytes(width, "big" if big else "little")
    path = tmp_path / f"fuzz-{fmt}"
    path.write_bytes(bytes(buf))
    with deadline(20):
        try:
            backend = open_backend(str(path), readonly=True)
        except OSError:
            return
        try:
            size = backend.size()
            for off in (0, 4096, size // 2, max(size - 10_000, 0)):
                backend.pread(off, 65536)
        except OSError:
            pass
        finally:
            backend.close()
