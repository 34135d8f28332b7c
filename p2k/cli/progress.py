"""Progress bars for the long commands (fsck, newfs, makefs, cp -R, crashtest), on a terminal only.

The library functions take one optional callback, ``progress(what, done, total)`` (``total`` 0 when
it is not known ahead), and know nothing of the display; the CLI owns it here. Bars appear only
when standard output is a terminal and neither ``-q`` nor ``--json`` was given, so pipes, logs,
scripts and machine-readable output never see them.

tqdm, not rich: it is one small pure-Python package with no dependencies (rich brings
markdown-it-py and pygments, a large share of an install that needs neither), it draws on stderr
so stdout stays the command's own output, and ``tqdm.external_write_mode`` lets the commands'
ordinary lines pass above a live bar without tearing it.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing's, without importing it: a command's --help never needs typing (p2k.lazy)
if TYPE_CHECKING:  # argparse too: a command read by p2k.cli.quickparse never imports it
    import argparse
    from typing import Any, TextIO

    from p2k.cli.quickparse import QuickParser


def add_quiet_arg(p: argparse.ArgumentParser | QuickParser) -> None:
    p.add_argument("-q", "--quiet", dest="quiet", action="store_true", help="no progress display")


def wanted(args: argparse.Namespace, out: TextIO | None = None) -> bool:
    """Whether to draw: a terminal on stdout, and neither -q nor --json."""
    out = out or sys.stdout
    if getattr(args, "quiet", False) or getattr(args, "as_json", False) or getattr(args, "json", False):
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


class _AboveBars:
    """A stdout stand-in that writes whole lines above the bars (tqdm clears, writes, redraws)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        from tqdm import tqdm

        with tqdm.external_write_mode(file=sys.stderr):
            self._out.write(text)
            self._out.flush()
        return len(text)

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return self._out.isatty()


class Bars:
    """The callback a library function gets: one bar for the current step (named by ``what``) and,
    with ``steps``, an overall bar counting them. Disabled, it does nothing at all."""

    def __init__(self, enabled: bool, title: str, *, steps: list[str] | None = None,
                 units: dict[str, str] | None = None, unit: str = "it") -> None:
        self.enabled = enabled
        self.title = title
        self.steps = steps or []
        self.units = units or {}
        self.unit = unit
        self.overall: Any = None
        self.bar: Any = None
        self._what: str | None = None
        self.out: TextIO = _AboveBars(sys.stdout) if enabled else sys.stdout  # type: ignore[assignment]
        if not enabled:
            return
        from tqdm import tqdm  # only when a terminal will show it: every command imports this module

        self._tqdm = tqdm
        if self.steps:
            self.overall = self._tqdm(total=len(self.steps), desc=title, unit="step", file=sys.stderr, leave=False,
                                position=0, dynamic_ncols=True, bar_format="{desc}: {n_fmt}/{total_fmt} {bar}")

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if what != self._what:
            self._close_bar()
            self._what = what
            if self.overall is not None and what in self.steps:
                self.overall.n = self.steps.index(what) + 1
                self.overall.set_description_str(f"{self.title} {what}")
            unit = self.units.get(what, self.unit)
            scale = unit == "B"
            self.bar = self._tqdm(total=total or None, desc=f"{what}" if self.overall else f"{self.title} {what}",
                            unit=unit, unit_scale=scale, file=sys.stderr, leave=False,
                            position=1 if self.overall is not None else 0, dynamic_ncols=True)
        bar = self.bar
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if total and done >= total:
            self._close_bar()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._what = None

    def close(self) -> None:
        self._close_bar()
        if self.overall is not None:
            self.overall.close()
            self.overall = None

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
