#!/usr/bin/env python3
"""p2k's fsspec file system against its peers, in one run, on one UFS2 image made by makefs.

1. Sequential read of a 64 MiB file through ``fsspec.open("p2k://big::IMAGE")`` vs ``dissect.ffs``
   (the forensic reader people use for FFS images from Python). Host ``open()`` of the source file is
   printed as the ceiling, not as a peer.
2. The same file with the image served over HTTP (a local server with range requests): p2k reading
   through ``p2k://big::http://...`` vs fsspec's own http:// reading the raw source file — what the
   file-system layer costs on top of the transport — and the bytes the server sent.
3. ``fs.find`` + ``fs.info`` of every entry of a 2,000-file tree vs dissect.ffs's walk.

Usage: ``python bench/bench_fsspec.py [--workdir DIR] [--size-mib 64]``. Prints ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fsspec
from bench_ffs_read import dissect_walk  # the same walk as the read bench's peer

CHUNK = 1 << 20


def build(work: Path, size_mib: int) -> Path:
    img = work / f"bench-fsspec-{size_mib}m.img"
    src = work / "src"
    if not src.exists():
        (src / "tree").mkdir(parents=True)
        block = os.urandom(CHUNK)
        with open(src / "big", "wb") as f:
            for i in range(size_mib):
                f.write(block[i:] + block[:i])
        for d in range(20):
            sub = src / "tree" / f"d{d:02d}"
            sub.mkdir()
            for i in range(100):
                (sub / f"file{i:03d}").write_bytes(b"x" * (i * 37 % 3000))
    if not img.exists():
        subprocess.run(["makefs", "-t", "ffs", "-o", "version=2", "-s", f"{size_mib + 32}m", str(img), str(src)],
                       check=True, capture_output=True)
    return img


def best(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def read_all(f: Any) -> int:
    n = 0
    while b := f.read(CHUNK):
        n += len(b)
    return n


def p2k_read(url: str) -> int:
    fs, path = fsspec.core.url_to_fs(url)
    try:
        with fs.open(path, "rb") as f:
            return read_all(f)
    finally:
        fs.close()


def dissect_read(img: Path) -> int:
    from dissect.ffs import FFS

    with open(img, "rb") as fh:
        return read_all(FFS(fh).get("/big").open())


def p2k_walk(img: Path) -> int:
    fs = fsspec.filesystem("p2k", fo=str(img), skip_instance_cache=True)
    try:
        found = fs.find("tree", withdirs=True, detail=True)
        return sum(1 for info in found.values() if info["mode"] is not None)
    finally:
        fs.close()


class Counting(SimpleHTTPRequestHandler):
    """Ranges and a byte count, as in tests/ecosystem/test_fsspec_urls.py."""

    served = 0

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        f = open(path, "rb")  # noqa: SIM115 - closed by the base class
        rng = self.headers.get("Range")
        lo, hi = 0, size - 1
        if rng:
            a, _, b = rng.removeprefix("bytes=").partition("-")
            lo, hi = int(a), min(int(b) if b else size - 1, size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {lo}-{hi}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(hi - lo + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        f.seek(lo)
        self._left = hi - lo + 1
        return f

    def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
        while self._left > 0 and (chunk := source.read(min(self._left, 1 << 20))):
            outputfile.write(chunk)
            self._left -= len(chunk)
            type(self).served += len(chunk)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--size-mib", type=int, default=64)
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="p2k-bench-fsspec-"))
    work.mkdir(parents=True, exist_ok=True)
    img = build(work, a.size_mib)
    size = a.size_mib << 20

    t_host, n0 = best(lambda: read_all(open(work / "src" / "big", "rb")))
    t_p2k, n1 = best(lambda: p2k_read(f"p2k://big::{img}"))
    t_dis, n2 = best(lambda: dissect_read(img))
    assert n0 == n1 == n2 == size
    mib = size / (1 << 20)
    print(f"read {a.size_mib} MiB: p2k fsspec {t_p2k:.3f} s ({mib / t_p2k:.0f} MiB/s)   dissect.ffs {t_dis:.3f} s "
          f"({mib / t_dis:.0f} MiB/s)   host open() {t_host:.3f} s")
    print(f"  ratio p2k/dissect throughput: {t_dis / t_p2k:.2f}x")

    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *x: Counting(*x, directory=str(work)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        Counting.served = 0
        t_http_raw, n3 = best(lambda: read_all(fsspec.open(f"{base}/src/big", "rb", block_size=1 << 20).open()), 1)
        raw_bytes = Counting.served
        Counting.served = 0
        t_http_p2k, n4 = best(lambda: p2k_read(f"p2k://big::{base}/{img.name}"), 1)
        p2k_bytes = Counting.served
    finally:
        server.shutdown()
        server.server_close()
    assert n3 == n4 == size
    print(f"read {a.size_mib} MiB over http: p2k://big::http {t_http_p2k:.3f} s ({p2k_bytes / size:.2f}x the file's "
          f"bytes served)   fsspec http raw file {t_http_raw:.3f} s ({raw_bytes / size:.2f}x)")
    print(f"  ratio p2k-over-http / fsspec-http throughput: {t_http_raw / t_http_p2k:.2f}x")

    t_pw, c1 = best(lambda: p2k_walk(img))
    t_dw, c2 = best(lambda: dissect_walk(img))
    print(f"find + info of {c1} entries: p2k fsspec {t_pw:.3f} s   dissect.ffs walk ({c2}) {t_dw:.3f} s")
    print(f"  ratio p2k/dissect: {t_dw / t_pw:.2f}x")


if __name__ == "__main__":
    main()
