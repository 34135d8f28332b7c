"""The ``p2k`` program's entry point: ``p2k --version`` is answered before anything loads, and a
finished command's exit skips the interpreter's teardown of its modules.

A version query is what scripts and package managers run to see whether a tool is there; it should
cost what ``python -c pass`` costs. The parser (argparse with re, gettext and locale), typing and a
command's modules are most of a command's start-up, and ``--version`` needs none of them. The text
and exit status are argparse's ``version`` action's (``p2k.cli.main`` declares the same option, for
``--help`` and for ``--version`` among other words).
"""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:] == ["--version"]:
        from p2k import __version__

        print(f"p2k {__version__}")
        return 0
    import gc

    # A young collection every 700 net allocations (the default) runs some 40 times over the
    # imports and a few hundred times over a walk's tuples, for almost no cyclic garbage: a
    # command's start-up makes objects that live as long as the process. Every 20,000 keeps what
    # cyclic garbage there is bounded (a daemon's too) and saves 1.5-3 ms of a 45 ms find.
    gc.set_threshold(20_000, 10, 10)
    from p2k.cli.main import main as run

    rc = run()
    # The command is done: its kernel halted, its files closed (host I/O is unbuffered os.pwrite).
    # What is still alive goes to the collector's permanent generation, so the interpreter's exit
    # does not walk the thousands of objects the imports made once more (3-4 ms, a tenth of a small
    # command); the memory goes back with the process. Only cyclic garbage left at this point
    # would miss its finalizer, and commands do not leave their clean-up to the collector.
    gc.freeze()
    _leave(rc)
    return rc


def _leave(rc: int) -> None:
    """End the process now that the command is done, without the interpreter's teardown.

    Tearing down clears every module's namespace and frees the objects the imports made, one by
    one: 2.6 ms of a 45 ms ``p2k find``, for memory the process hands back whole. What a normal
    exit does that matters is done here first: the standard streams are flushed and the atexit
    handlers run (logging's flush among them). Where that is not the whole story the interpreter
    exits as usual: a stream that cannot be flushed (a closed pipe: its error stays Python's), or
    another thread still running, which a normal exit would wait for."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    import atexit
    import os

    atexit._run_exitfuncs()
    os._exit(rc)
