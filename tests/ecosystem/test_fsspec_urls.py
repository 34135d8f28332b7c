"""Chained fsspec URLs: the image itself opened through memory://, file:// and http:// (a local
server with range requests that counts what it sends), and pandas reading a CSV out of an image."""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eco_images import CSV, data_tree, labelled, makefs, needs_makefs

fsspec = pytest.importorskip("fsspec")
pytestmark = needs_makefs

BIG = 6 << 20  # a file the reads below must not pull in


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("urls")
    return makefs(d / "disk.img", data_tree(d / "tree", big=BIG), "48m")


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For the tests that hold an image in memory (memory://, gzip): small, so the test process
    stays small for the memory bounds other tests check."""
    d = tmp_path_factory.mktemp("small")
    return makefs(d / "small.img", data_tree(d / "tree"), "4m")


@pytest.fixture(scope="module")
def labelled_image(small_image: Path) -> Path:
    return labelled(small_image, small_image.with_name("labelled.img"))


def test_local_image_by_fo_and_by_chained_url(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = fsspec.filesystem("p2k", fo=str(image), skip_instance_cache=True)
    assert fs.cat_file("etc/motd") == b"Welcome to NetBSD.\n"
    info = fs.info("motd")
    assert (info["type"], info["destination"], info["islink"]) == ("link", "etc/motd", True)
    assert fs.info("data")["type"] == "directory" and fs.info("data/x.csv")["size"] == len(CSV)
    assert fs.info("data/x.csv")["mode"] & 0o777 == (image.parent / "tree/data/x.csv").stat().st_mode & 0o777
    assert sorted(fs.find("")) == ["data/big.bin", "data/x.csv", "etc/motd", "motd"]
    assert fs.glob("**/*.csv") == ["data/x.csv"]
    assert fs.du("data") == BIG + len(CSV)
    assert fs.cat_file("data/big.bin", start=1000, end=1010) == bytes(range(1000 % 256, 1000 % 256 + 10))
    assert fs.cat_file("data/x.csv", start=-16) == CSV[-16:].encode()
    fs.close()
    monkeypatch.chdir(image.parent)
    with fsspec.open("p2k://etc/motd::disk.img", "rt") as f:
        assert f.read() == "Welcome to NetBSD.\n"
    with fsspec.open(f"p2k://data/x.csv::file://{image}", "rb") as f:
        assert f.read() == CSV.encode()


def test_get_recursive_keeps_links(image: Path, tmp_path: Path) -> None:
    fs = fsspec.filesystem("p2k", fo=str(image), skip_instance_cache=True)
    fs.get("", str(tmp_path / "out"), recursive=True)
    fs.close()
    assert (tmp_path / "out/data/x.csv").read_text() == CSV
    assert (tmp_path / "out/motd").is_symlink() and (tmp_path / "out/motd").read_text() == "Welcome to NetBSD.\n"
    assert (tmp_path / "out/data/big.bin").stat().st_size == BIG


def test_memory_url_and_partition(labelled_image: Path) -> None:
    mem = fsspec.filesystem("memory")
    mem.pipe_file("/images/labelled.img", labelled_image.read_bytes())
    with fsspec.open("p2k://data/x.csv::memory://images/labelled.img:a", "rt") as f:
        assert f.read() == CSV
    fs = fsspec.filesystem("p2k", fo="memory://images/labelled.img", partition="a", skip_instance_cache=True)
    assert fs.ls("etc", detail=False) == ["etc/motd"]
    fs.close()
    with pytest.raises(ValueError, match="read-only"):
        fsspec.filesystem("p2k", fo="memory://images/labelled.img:a", mode="rw", skip_instance_cache=True)
    mem.rm("/images/labelled.img")
    local = fsspec.filesystem("p2k", fo=f"{labelled_image}:a", skip_instance_cache=True)
    assert local.cat_file("etc/motd") == b"Welcome to NetBSD.\n"
    local.close()


class RangeHandler(SimpleHTTPRequestHandler):
    """http.server with ``Range: bytes=A-B`` (what fsspec's HTTP file asks) and a byte count."""

    served = 0
    requests: list[str] = []
    fail = False  # answer every request with 500, as a server that has gone wrong

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        if self.fail:
            self.send_error(500)
            return None
        path = Path(self.translate_path(self.path))
        rng = self.headers.get("Range")
        if not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller, as in the base class
        if not rng:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self._remaining = size
            return f
        lo_s, _, hi_s = rng.removeprefix("bytes=").partition("-")
        lo, hi = int(lo_s), min(int(hi_s) if hi_s else size - 1, size - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {lo}-{hi}/{size}")
        self.send_header("Content-Length", str(hi - lo + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        f.seek(lo)
        self._remaining = hi - lo + 1
        return f

    def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
        while self._remaining > 0:
            chunk = source.read(min(self._remaining, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            self._remaining -= len(chunk)
            type(self).served += len(chunk)
        type(self).requests.append(self.headers.get("Range") or "whole")


@pytest.fixture
def http(image: Path) -> Iterator[tuple[str, type[RangeHandler]]]:
    """A server on 127.0.0.1 for the image's folder: its URL, and its handler class with the counts."""
    handler = type("Handler", (RangeHandler,), {"served": 0, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(image.parent)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_http_image_is_read_in_ranges(image: Path, http: tuple[str, type[RangeHandler]]) -> None:
    url, handler = http
    with fsspec.open(f"p2k://etc/motd::{url}/disk.img", "rt") as f:
        assert f.read() == "Welcome to NetBSD.\n"
    fs = fsspec.filesystem("p2k", fo=f"{url}/disk.img", skip_instance_cache=True)
    assert fs.cat_file("data/big.bin", start=3 << 20, end=(3 << 20) + 4) == bytes([0, 1, 2, 3])
    assert fs.cat_file("data/x.csv") == CSV.encode()
    fs.close()
    size = image.stat().st_size
    assert handler.requests and "whole" not in handler.requests, handler.requests
    print(f"\nhttp: {handler.served} bytes in {len(handler.requests)} requests for a {size}-byte image")
    assert 0 < handler.served < size // 8, f"{handler.served} bytes served of a {size}-byte image"


def test_pandas_read_csv_out_of_an_image(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pd = pytest.importorskip("pandas")
    monkeypatch.chdir(image.parent)
    df = pd.read_csv("p2k://data/x.csv::disk.img")
    assert list(df.columns) == ["city", "population"]
    assert df.set_index("city")["population"].to_dict() == {"Amsterdam": 921402, "Berkeley": 124321,
                                                            "Kyoto": 1463723}


def test_errors_name_what_is_wrong(image: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsspec.filesystem("p2k", fo=str(tmp_path / "missing.img"), skip_instance_cache=True)
    fs = fsspec.filesystem("p2k", fo=str(image), skip_instance_cache=True)
    with pytest.raises(FileNotFoundError) as e:
        fs.cat_file("etc/nope")
    assert e.value.filename == "etc/nope"
    with pytest.raises(IsADirectoryError):
        fs.cat_file("etc")
    with pytest.raises(OSError) as e:
        fs.pipe_file("etc/new", b"x")  # mounted read-only
    assert e.value.errno == errno.EROFS
    fs.close()
    with pytest.raises(ValueError, match="no image"):
        fsspec.filesystem("p2k", skip_instance_cache=True)


def test_pickled_and_threaded_as_dask_uses_it(image: Path) -> None:
    """Dask ships a file system to workers by pickling it (fsspec rebuilds it from its arguments)
    and reads partitions from several threads at once."""
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    fs = fsspec.filesystem("p2k", fo=str(image), skip_instance_cache=True)
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.cat_file("data/x.csv") == CSV.encode()
    step = BIG // 16
    expected = (bytes(range(256)) * (BIG // 256))
    with ThreadPoolExecutor(8) as pool:
        parts = list(pool.map(lambda i: fs.cat_file("data/big.bin", start=i * step, end=(i + 1) * step), range(16)))
    assert b"".join(parts) == expected
    fs.close()
    clone.close()


def test_one_mount_per_local_image(image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write through a chained URL and a file system made by arguments share one read-write
    mount (two would be two kernels writing one file); the last to let go unmounts it clean."""
    import shutil

    from p2k.cli.main import main as p2k_main

    rw = tmp_path / "rw.img"
    shutil.copyfile(image, rw)
    monkeypatch.chdir(tmp_path)
    with fsspec.open("p2k://notes/a.txt::rw.img", "wt", p2k={"mode": "rw"}) as f:
        f.write("through the URL\n")
    fs = fsspec.filesystem("p2k", fo=str(rw), mode="rw", skip_instance_cache=True)
    assert fs.cat_file("notes/a.txt") == b"through the URL\n"
    fs.pipe_file("notes/b.txt", b"through the instance\n")
    url_fs, _ = fsspec.core.url_to_fs("p2k://notes::rw.img", p2k={"mode": "rw"})
    assert url_fs.image is fs.image
    assert url_fs.cat_file("notes/b.txt") == b"through the instance\n"
    fs.close()
    assert not url_fs.image.closed  # still in use by the URL's instance
    url_fs.close()
    assert p2k_main(["fsck", "-fn", str(rw)]) == 0
    ro = fsspec.filesystem("p2k", fo=str(rw), skip_instance_cache=True)
    assert sorted(ro.ls("notes", detail=False)) == ["notes/a.txt", "notes/b.txt"]
    ro.close()


def test_server_gone_is_an_io_error(image: Path, http: tuple[str, type[RangeHandler]]) -> None:
    """The transport failing under a mounted remote image is EIO from the read, as a dying disk
    is; nothing hangs and the file system can still be closed."""
    import time

    url, handler = http
    fs = fsspec.filesystem("p2k", fo=f"{url}/disk.img", skip_instance_cache=True, remote_block_size=64 << 10)
    assert fs.cat_file("etc/motd") == b"Welcome to NetBSD.\n"
    handler.fail = True
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        fs.cat_file("data/big.bin", start=5 << 20, end=(5 << 20) + 100)
    assert e.value.errno == errno.EIO and time.monotonic() - t0 < 30
    fs.close()


def test_compressed_image_over_http(image: Path, small_image: Path, http: tuple[str, type[RangeHandler]]) -> None:
    """``p2k://...::https://host/release.img.gz``: the container is decoded in place (indexed_gzip
    builds its restart points in one streaming pass over the compressed bytes), never unpacked
    to disk."""
    pytest.importorskip("indexed_gzip")
    import gzip

    url, handler = http
    gz = image.parent / "small.img.gz"  # where the server serves from
    gz.write_bytes(gzip.compress(small_image.read_bytes(), compresslevel=1))
    with fsspec.open(f"p2k://etc/motd::{url}/small.img.gz", "rt") as f:
        assert f.read() == "Welcome to NetBSD.\n"
    fs = fsspec.filesystem("p2k", fo=f"{url}/small.img.gz", skip_instance_cache=True)
    assert fs.cat_file("data/x.csv", start=5, end=15) == CSV.encode()[5:15]
    fs.close()
    assert "whole" not in handler.requests
    with pytest.raises(ValueError, match="read-only"):
        fsspec.filesystem("p2k", fo=f"{url}/small.img.gz", mode="rw", skip_instance_cache=True)


def _overlay_pair(small_image: Path, where: Path) -> tuple[Path, Path]:
    """``base.qcow2`` (the image) and ``overlay.qcow2`` over it holding only the clusters where a
    changed copy differs: qemu-img's own ``convert -B``, so the overlay is what qemu makes."""
    import shutil
    import subprocess

    if shutil.which("qemu-img") is None:
        pytest.skip("needs qemu-img")
    from p2k.image import open_image

    base, overlay, changed = where / "base.qcow2", where / "overlay.qcow2", where / "changed.img"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(small_image), str(base)], check=True)
    shutil.copyfile(small_image, changed)
    with open_image(str(changed), "rw") as fs:
        fs.path("/etc/motd").write_text("Welcome to the overlay.\n")
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", "-B", base.name, "-F", "qcow2", str(changed), str(overlay)],
                   check=True, cwd=where)
    changed.unlink()
    import json

    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["backing-filename"] == "base.qcow2"
    return base, overlay


def test_qcow2_overlay_over_http_follows_its_backing_file(image: Path, small_image: Path,
                                                           http: tuple[str, type[RangeHandler]]) -> None:
    """``p2k://...::https://host/vm/overlay.qcow2``: the backing file qemu-img named in the overlay
    is fetched beside it, by range, from the same server; the changed file comes from the overlay,
    the rest from the base."""
    url, handler = http
    _overlay_pair(small_image, image.parent)
    fs = fsspec.filesystem("p2k", fo=f"{url}/overlay.qcow2", skip_instance_cache=True)
    assert fs.cat_file("etc/motd") == b"Welcome to the overlay.\n"
    assert fs.cat_file("data/x.csv") == CSV.encode()
    fs.close()
    assert "whole" not in handler.requests
    with fsspec.open(f"p2k://etc/motd::{url}/base.qcow2", "rt") as f:
        assert f.read() == "Welcome to NetBSD.\n"


def test_qcow2_overlay_in_memory_and_a_missing_backing_file(small_image: Path, tmp_path: Path) -> None:
    base, overlay = _overlay_pair(small_image, tmp_path)
    mem = fsspec.filesystem("memory")
    mem.pipe("/vm/base.qcow2", base.read_bytes())
    mem.pipe("/vm/overlay.qcow2", overlay.read_bytes())
    try:
        with fsspec.open("p2k://etc/motd::memory://vm/overlay.qcow2", "rt") as f:
            assert f.read() == "Welcome to the overlay.\n"
        mem.rm("/vm/base.qcow2")
        with pytest.raises(FileNotFoundError):
            fsspec.filesystem("p2k", fo="memory://vm/overlay.qcow2", skip_instance_cache=True)
    finally:
        mem.rm("/vm", recursive=True)


def test_commands_take_an_image_by_url(image: Path, labelled_image: Path,
                                       http: tuple[str, type[RangeHandler]]) -> None:
    """``p2k ls|cat|info|parts https://…``: the commands read an image behind a URL as the fsspec
    file system does (in ranges, read-only, partitions by name); a write is refused in one line."""
    import shutil
    import subprocess
    import sys

    url, handler = http
    shutil.copyfile(labelled_image, image.parent / "labelled.img")
    p2k = [sys.executable, "-m", "p2k"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*p2k, *args], capture_output=True, text=True, timeout=120)

    r = run("cat", f"{url}/disk.img", "/etc/motd")
    assert (r.returncode, r.stdout, r.stderr) == (0, "Welcome to NetBSD.\n", "")
    r = run("ls", f"{url}/labelled.img:a", "/data")
    assert r.returncode == 0 and "x.csv" in r.stdout.split(), r.stderr
    r = run("info", f"{url}/labelled.img")
    assert r.returncode == 0 and "FFSv" in r.stdout and "disklabel" in r.stdout.lower(), r.stdout + r.stderr
    r = run("parts", f"{url}/labelled.img")
    assert r.returncode == 0 and "FFS" in r.stdout, r.stderr
    assert "whole" not in handler.requests and handler.served < (image.stat().st_size + 2 * (4 << 20)) // 4
    r = run("mkdir", f"{url}/disk.img", "/new")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "read-only" in r.stderr, r.stderr
    r = run("ls", f"{url}/absent.img", "/")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
