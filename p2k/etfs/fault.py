"""Fault injection at the device layer, for testing file systems the way rump kernels are used to.

A ``FaultPlan`` says what goes wrong: the Nth write fails with EIO, reads of a byte range fail with
EIO, the Nth write is torn (only its first bytes reach the host file, then the power is gone), or the
power is cut at the Nth write. For a power cut the device behaves like a disk with a volatile write
cache: writes since the last flush (fsync) are held back; at the cut, only an arbitrary (seeded)
subset of them reaches the host file and every later I/O fails. That is exactly the freedom a real
disk has, so a file system survives it only if it orders its writes with flushes.

Plans come from Python (``Device.set_faults``) or from drivespec options, p2k's extension to
rump_server's syntax: ``failwrite=N``, ``failread=START-END``, ``tearwrite=N``, ``tearbytes=M``,
``powercut=N``, ``seed=S``.
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2k.hyper import Window


@dataclass
class FaultPlan:
    fail_write: int | None = None  # 1-based index of the write that fails with EIO
    fail_writes_from: int | None = None  # every write from this 1-based index on fails (a dying disk)
    fail_read: tuple[int, int] | None = None  # [start, end) byte range whose reads fail
    tear_write: int | None = None  # 1-based index of the write that is torn
    tear_bytes: int | None = None  # bytes of the torn write that land (default: half, sector-aligned)
    power_cut: int | None = None  # 1-based index of the write at which the power goes
    seed: int = 0
    hold_writes: bool = False  # volatile write cache even without a planned cut (for cut_now())

    @property
    def active(self) -> bool:
        return any(x is not None for x in (self.fail_write, self.fail_writes_from, self.fail_read, self.tear_write,
                                           self.power_cut)) \
            or self.hold_writes


@dataclass
class FaultState:
    """What the injector has seen; tests read it to know where a cut fell."""

    writes: int = 0
    reads: int = 0
    flushes: int = 0
    dead: bool = False
    kept: int = 0
    dropped: int = 0
    lost_writes: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) never written


class FaultInjector:
    """Wraps a Window's I/O; device-relative offsets, window checks stay in the Window."""

    def __init__(self, host: Window, plan: FaultPlan) -> None:
        self.host = host
        self.plan = plan
        self.state = FaultState()
        self.rng = random.Random(plan.seed)
        self.pending: list[tuple[int, bytes]] = []  # writes since the last flush, oldest first
        self.cache_writes = plan.power_cut is not None or plan.hold_writes

    def _check_alive(self) -> None:
        if self.state.dead:
            raise OSError(errno.EIO, "device lost power")

    def pread(self, off: int, n: int) -> bytes:
        self._check_alive()
        self.state.reads += 1
        fr = self.plan.fail_read
        if fr is not None and off < fr[1] and off + n > fr[0]:
            raise OSError(errno.EIO, f"injected read error at {off}+{n}")
        data = self.host.pread(off, n)
        if not self.pending:
            return data
        buf = bytearray(data)
        end = off + n
        for woff, wdata in self.pending:  # later writes win: apply in order
            wend = woff + len(wdata)
            if woff < end and wend > off:
                lo, hi = max(off, woff), min(end, wend)
                buf[lo - off:hi - off] = wdata[lo - woff:hi - woff]
        return bytes(buf)

    def pwrite(self, off: int, data: bytes | bytearray | memoryview) -> None:
        self._check_alive()
        st = self.state
        st.writes += 1
        p = self.plan
        if p.fail_write == st.writes or (p.fail_writes_from is not None and st.writes >= p.fail_writes_from):
            raise OSError(errno.EIO, f"injected write error (write #{st.writes})")
        if p.tear_write == st.writes:
            keep = p.tear_bytes if p.tear_bytes is not None else (len(data) // 2) & ~511
            self.cut(extra=(off, bytes(data[:keep])))
            raise OSError(errno.EIO, f"power lost during write #{st.writes} (torn after {keep} bytes)")
        if self.cache_writes:
            self.pending.append((off, bytes(data)))
            if p.power_cut == st.writes:
                self.cut()
                raise OSError(errno.EIO, f"power lost at write #{st.writes}")
            return
        self.host.pwrite(off, data)

    def fsync(self) -> None:
        self._check_alive()
        self.state.flushes += 1
        for off, data in self.pending:
            self.host.pwrite(off, data)
        self.pending.clear()
        self.host.fsync()

    def cut(self, extra: tuple[int, bytes] | None = None) -> None:
        """The power goes now: a random subset of the unflushed writes lands, in order."""
        st = self.state
        for off, data in self.pending:
            if self.rng.random() < 0.5:
                self.host.pwrite(off, data)
                st.kept += 1
            else:
                st.dropped += 1
                st.lost_writes.append((off, len(data)))
        self.pending.clear()
        if extra is not None and extra[1]:
            self.host.pwrite(*extra)
        self.host.fsync()
        st.dead = True


def parse_fault_option(plan: FaultPlan, name: str, value: str, parse_size: object) -> None:
    """Apply one drivespec fault option to ``plan``; ValueError names what is wrong."""
    ps = parse_size  # p2k.etfs.drivespec.parse_size, passed in to avoid an import cycle
    if name == "failwrite":
        plan.fail_write = _positive(value, name)
    elif name == "failread":
        start, sep, end = value.partition("-")
        if not sep:
            raise ValueError("failread needs START-END")
        a, b = ps(start, "-d failread"), ps(end, "-d failread")  # type: ignore[operator]
        if b <= a:
            raise ValueError("failread: empty range")
        plan.fail_read = (a, b)
    elif name == "tearwrite":
        plan.tear_write = _positive(value, name)
    elif name == "tearbytes":
        plan.tear_bytes = ps(value, "-d tearbytes")  # type: ignore[operator]
    elif name == "powercut":
        plan.power_cut = _positive(value, name)
    elif name == "seed":
        plan.seed = _positive(value, name, minimum=0)
    else:
        raise ValueError(f"unknown fault option {name}")


def _positive(value: str, name: str, minimum: int = 1) -> int:
    if not value.isdigit() or int(value) < minimum:
        raise ValueError(f"invalid {name} value {value!r}")
    return int(value)


FAULT_TOKENS = ("failwrite", "failread", "tearwrite", "tearbytes", "powercut", "seed")
