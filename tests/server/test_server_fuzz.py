"""The protocol decoder and a live server under hypothesis: garbage is refused, never fatal.

The decoder is fuzzed in-process (thousands of cases, fast); then a real server gets random bytes,
random frames and mutated valid requests on many connections while one well-behaved client keeps
working, and the server is still there at the end.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_harness import ServerProc, start

from p2k.client import Client
from p2k.sp import protocol as P
from p2k.sp.ops import OP_HALT, OP_HANDSHAKE, OP_OF

scalars = (st.none() | st.booleans() | st.integers() | st.binary(max_size=64) | st.text(max_size=32)
           | st.floats(allow_nan=False) | st.builds(P.Handle, st.integers(0, (1 << 64) - 1)))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=20)


def _decode_or_refuse(raw: bytes) -> None:
    try:
        P.decode(raw)
    except P.ProtocolError:
        pass


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_takes_any_bytes(raw: bytes) -> None:
    _decode_or_refuse(raw)


@settings(max_examples=1500, deadline=None)
@given(values, st.data())
def test_decoder_round_trips_and_refuses_mutations(value: object, data: st.DataObject) -> None:
    raw = P.encode(value)
    assert P.decode(raw) == value
    cut = data.draw(st.integers(0, len(raw) - 1))
    _decode_or_refuse(raw[:cut])  # truncated
    pos = data.draw(st.integers(0, len(raw) - 1))
    flipped = bytearray(raw)
    flipped[pos] ^= data.draw(st.integers(1, 255))
    _decode_or_refuse(bytes(flipped))
    _decode_or_refuse(raw + data.draw(st.binary(min_size=1, max_size=8)))


def test_decoder_refuses_lies_and_depth() -> None:
    with pytest.raises(P.ProtocolError):
        P.decode(b"l\xff\xff\xff\xff")  # four billion items promised, none sent
    with pytest.raises(P.ProtocolError):
        P.decode(b"b\x7f\xff\xff\xffabc")
    with pytest.raises(P.ProtocolError):
        P.decode(b"l\x00\x00\x00\x01" * 20 + b"N")
    with pytest.raises(P.ProtocolError):
        P.parse_header(P.HEADER.pack(1 << 30, 1, P.REQ, 0), P.DEFAULT_MAX_FRAME)
    with pytest.raises(P.ProtocolError):
        P.parse_header(P.HEADER.pack(0, 1, 77, 0), P.DEFAULT_MAX_FRAME)


# ---- against a live server ---------------------------------------------------------------------------


def _hello() -> bytes:
    return P.frame(1, P.REQ, OP_HANDSHAKE, P.encode({"version": [P.PROTOCOL_MAJOR, 0]}))


frames = st.one_of(
    st.binary(max_size=200),  # raw garbage
    st.builds(lambda ln, rq, cls, code, body: struct.pack("!IQHH", ln, rq, cls, code) + body,
              st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 64) - 1), st.integers(0, 65535),
              st.integers(0, 65535).filter(lambda c: c != OP_HALT), st.binary(max_size=64)),
    st.builds(lambda code, body: P.frame(7, P.REQ, code, body),
              st.sampled_from(sorted(OP_OF.values())), st.binary(max_size=64)),
    st.builds(lambda v: P.frame(1, P.REQ, OP_HANDSHAKE, P.encode(v)),  # hostile handshakes
              values | st.fixed_dictionaries({"version": values, "uid": values, "gid": values, "groups": values})
              | st.fixed_dictionaries({"version": st.just([1, 0]), "uid": st.integers(), "groups": values})),
    st.builds(lambda code, v: P.frame(7, P.REQ, code, P.encode(v)),
              st.sampled_from([OP_OF[n] for n in ("stat", "close", "read", "getdents", "vstat", "fstat")]),
              values),
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> ServerProc:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    s = start(tmp, "unix://fuzz.sock", foreground=True)
    yield s  # type: ignore[misc]
    s.kill()


def _poke(url_path: str, handshake: bool, payload: bytes) -> None:
    with socket.socket(socket.AF_UNIX) as sk:
        sk.settimeout(5)
        sk.connect(url_path)
        sk.recv(P.BANNER_MAX)
        if handshake:
            sk.sendall(_hello())
        try:
            sk.sendall(payload)
            sk.shutdown(socket.SHUT_WR)
            sk.settimeout(0.05)
            while sk.recv(1 << 16):
                pass
        except OSError:
            pass  # the server may close on us mid-send; that is the point


@pytest.fixture(scope="module")
def bystander(fuzz_server: ServerProc) -> Client:
    """A well-behaved client connected through all the fuzzing; it must keep getting answers."""
    c = fuzz_server.connect()
    yield c  # type: ignore[misc]
    c.close()


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.booleans(), frames)
def test_server_survives_garbage(fuzz_server: ServerProc, bystander: Client, handshake: bool,
                                 payload: bytes) -> None:
    _poke(fuzz_server.url[len("unix://"):], handshake, payload)
    assert bystander.ping(len(payload)) == [len(payload)]


_paths = st.sampled_from(["/", "/fz", "/fz/a", "/fz/a/b", "a", "..", ".", "", "/fz/../fz/a", "/dev", "x/", b"/fz/b",
                          "/fz/a/"])
_args = (_paths | st.integers(-3, 70000) | st.sampled_from([os.O_CREAT | os.O_RDWR, 0o777, 0o4755]) | st.none()
         | st.booleans() | st.binary(max_size=8) | st.builds(P.Handle, st.integers(0, 5)))


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(sorted(set(OP_OF) - {"unmount"})), st.lists(_args, max_size=4),
       st.dictionaries(st.sampled_from(["dir_fd", "follow_symlinks", "flags", "mode", "data"]), _args, max_size=2))
def test_random_well_formed_calls(bystander: Client, name: str, args: list[object], kwargs: dict[str, object]) -> None:
    """Well-framed calls with arguments of every kind: answered (or refused with an errno), never a
    crash — the log check below catches any that reached a bug path."""
    try:
        bystander.call(name, *args, **kwargs)
    except OSError:
        pass


def test_server_still_serves_after_fuzzing(fuzz_server: ServerProc, bystander: Client) -> None:
    for _ in range(30):
        _poke(fuzz_server.url[len("unix://"):], True, os.urandom(100))
    with fuzz_server.connect() as c:
        c.sys.mkdir("/after", 0o755)
        assert c.sys.stat("/after").st_nlink == 2
        end = time.monotonic() + 10
        while c.stats()["connections"] > 2 and time.monotonic() < end:
            time.sleep(0.05)
        assert c.stats()["connections"] == 2  # this one and the bystander
    assert bystander.sys.stat("/after").st_nlink == 2
    assert fuzz_server.popen is not None and fuzz_server.popen.poll() is None
    assert fuzz_server.log is not None
    log = fuzz_server.log.read_text()
    assert "protocol error" in log
    assert "Traceback" not in log, log[log.index("Traceback") - 200:][:3000]  # refused, never a bug path
