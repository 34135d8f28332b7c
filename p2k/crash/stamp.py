"""Self-describing file contents, so that a survivor of a crash can be checked byte by byte.

Every 16 bytes a workload writes are a token ``<FFFFFF:SSSSSSS>`` naming the file (by the id the
workload gave it at creation) and a sequence number. After a crash, every 16-byte unit of every file
must be zeros (a hole, or a block not yet written) or a token of that very file: a token of another
file means the file exposes bytes it never held — a stale block of a deleted file.
"""

from __future__ import annotations

import re

UNIT = 16
_TOKEN = re.compile(rb"<(\d{6}):(\d{7})>")
_ZERO = bytes(UNIT)


def stamp(file_id: int, seq: int, length: int) -> bytes:
    """``length`` bytes (a multiple of UNIT) of tokens for ``file_id`` starting at ``seq``."""
    n = length // UNIT
    head = b"<%06d:" % file_id
    return b"".join(head + b"%07d>" % ((seq + i) % 10_000_000) for i in range(n))


def foreign_units(data: bytes, file_id: int | None) -> tuple[int | None, list[int]]:
    """(the file id the content claims, offsets of units that are neither zero nor that id's)."""
    owner = file_id
    bad: list[int] = []
    view = memoryview(data)
    for off in range(0, len(data) - len(data) % UNIT, UNIT):
        unit = bytes(view[off:off + UNIT])
        if unit == _ZERO:
            continue
        m = _TOKEN.fullmatch(unit)
        if m is None:
            bad.append(off)
            continue
        fid = int(m.group(1))
        if owner is None:
            owner = fid
        elif fid != owner:
            bad.append(off)
    tail = data[len(data) - len(data) % UNIT:]
    if tail.strip(b"\0"):
        bad.append(len(data) - len(tail))
    return owner, bad
