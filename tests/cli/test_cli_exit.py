"""The console script's quick exit (``p2k.cli.start._leave``) skips the interpreter's teardown: it
must still deliver what a normal exit would, or step aside when it cannot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)


def test_leave_flushes_streams_runs_atexit_and_keeps_the_status(tmp_path: Path) -> None:
    r = _run("import atexit, sys\n"
             "atexit.register(lambda: open('atexit.txt', 'w').write('ran'))\n"
             "sys.stdout.write('partial line, still buffered')\n"
             "sys.stderr.write('err')\n"
             "from p2k.cli.start import _leave\n"
             "_leave(3)\n"
             "print('not reached')\n", tmp_path)
    assert r.returncode == 3
    assert r.stdout == "partial line, still buffered"
    assert r.stderr == "err"
    assert (tmp_path / "atexit.txt").read_text() == "ran"


def test_leave_steps_aside_while_another_thread_runs(tmp_path: Path) -> None:
    # a normal exit waits for a non-daemon thread; the quick one would kill it half way
    r = _run("import threading, time\n"
             "def work():\n"
             "    time.sleep(0.3)\n"
             "    open('thread.txt', 'w').write('done')\n"
             "threading.Thread(target=work).start()\n"
             "from p2k.cli.start import _leave\n"
             "_leave(0)\n"
             "print('returned')\n", tmp_path)
    assert r.returncode == 0
    assert r.stdout == "returned\n"
    assert (tmp_path / "thread.txt").read_text() == "done"


def test_leave_steps_aside_when_stdout_cannot_be_flushed(tmp_path: Path) -> None:
    r = _run("import sys\n"
             "sys.stdout.write('x')\n"
             "sys.stdout.close()\n"
             "from p2k.cli.start import _leave\n"
             "_leave(0)\n"
             "sys.stderr.write('returned')\n", tmp_path)
    assert r.stderr == "returned"
