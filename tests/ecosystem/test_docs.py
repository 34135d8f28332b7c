"""docs/python-api.md is executed: every example in it runs against a copy of the demo image, and
the image the read-write examples changed must then pass fsck."""

from __future__ import annotations

import doctest
import gzip
from pathlib import Path

import pytest

from p2k.cli.main import main as p2k_main

ROOT = Path(__file__).resolve().parents[2]


def test_python_api_doc_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fsspec")
    pytest.importorskip("pandas")
    (tmp_path / "demo.img").write_bytes(gzip.decompress((ROOT / "images/demo.img.gz").read_bytes()))
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(str(ROOT / "docs/python-api.md"), module_relative=False, verbose=False,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted > 20
    assert result.failed == 0
    assert p2k_main(["fsck", "-fn", "demo.img"]) == 0
