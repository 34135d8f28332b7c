"""How fsck talks: messages, questions and their answers, in fsck_ffs's words.

Every inconsistency goes through ``Reporter``: ``ask`` prints the message and the question and
answers it as the mode says (``-n`` no, ``-y`` yes, ``-p`` only the repairs preen may make, else
"UNEXPECTED INCONSISTENCY" and exit 8; with none of them, the terminal is asked). Each call is also
recorded, so ``--json`` can print every finding and repair. A question answered "no" leaves the
file system unresolved, which is what turns into exit code 2 at the end.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

# sbin/fsck/exitvalues.h
FSCK_EXIT_OK = 0
FSCK_EXIT_USAGE = 1
FSCK_EXIT_UNRESOLVED = 2
FSCK_EXIT_ROOT_CHANGED = 4
FSCK_EXIT_CHECK_FAILED = 8
FSCK_EXIT_SIGNALLED = 12

# Questions fsck_ffs answers "yes" even under -n, because they only decide whether to go on.
PERSEVERE = ("CONTINUE", "LOOK FOR ALTERNATE SUPERBLOCKS")


class FsckExit(Exception):
    """Stop the check now with this exit code (pfatal in preen, a refused CONTINUE, ...)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Reporter:
    """Output and answers for one check. ``mode`` is 'n', 'y', 'p' or '' (ask the terminal)."""

    def __init__(self, devname: str, mode: str, *, as_json: bool = False, out: TextIO | None = None,
                 progress: bool | None = None) -> None:
        self.devname = devname
        self.mode = mode
        self.preen = mode == "p"
        self.as_json = as_json
        self.out = out if out is not None else sys.stdout
        self.resolved = True
        self.phase = "setup"
        self.findings: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.show_progress = (sys.stderr.isatty() and not as_json) if progress is None else progress
        self._progress_shown = False

    # ---- plain output ----
    def _emit(self, text: str) -> None:
        self.lines.append(text)
        if not self.as_json:
            self.out.write(text + "\n")
            self.out.flush()

    def say(self, text: str) -> None:
        """printf: no device prefix, not a finding (banners, the summary)."""
        self._emit(text)

    def banner(self, text: str) -> None:
        """A "** ..." line: printed when not preening."""
        if not self.preen:
            self._emit(text)

    def pwarn(self, text: str) -> None:
        """pwarn: in preen mode every line starts with the device name."""
        self._emit(f"{self.devname}: {text}" if self.preen else text)

    def _record(self, text: str, question: str | None, answer: str | None, info: dict[str, Any]) -> None:
        rec: dict[str, Any] = {"phase": self.phase, "message": text}
        if question:
            rec["question"] = question
        if answer:
            rec["answer"] = answer
        # what was done about it, in one word a script can match
        if answer in ("yes",) or (answer and answer.isupper() and answer != "UNEXPECTED INCONSISTENCY"):
            rec["action"] = (question or answer).lower()
        elif answer:
            rec["action"] = "none"
        else:
            rec["action"] = "reported"
        rec.update({k: v for k, v in info.items() if v is not None})
        self.findings.append(rec)

    def warn(self, text: str, **info: Any) -> None:
        """An inconsistency reported without a question (e.g. '1234 DUP I=5')."""
        self.pwarn(text)
        self._record(text, None, None, info)

    def fatal(self, text: str, **info: Any) -> None:
        """pfatal: a problem preen may not fix. Preen stops here with exit code 8."""
        if self.preen:
            self._record(text, None, "UNEXPECTED INCONSISTENCY", info)
            self._emit(f"{self.devname}: {text}")
            self._emit(f"{self.devname}: UNEXPECTED INCONSISTENCY; RUN fsck_ffs MANUALLY.")
            raise FsckExit(FSCK_EXIT_CHECK_FAILED)
        self._emit(text)
        self._record(text, None, None, info)

    # ---- questions ----
    def reply(self, question: str) -> bool:
        persevere = question in PERSEVERE
        if self.preen:
            self._emit(f"{self.devname}: INTERNAL ERROR: GOT TO reply()")
            raise FsckExit(FSCK_EXIT_CHECK_FAILED)
        if self.mode == "n" and not persevere:
            self._emit(f"{question}? no\n")
            self.resolved = False
            return False
        if self.mode == "y" or (persevere and self.mode == "n"):
            self._emit(f"{question}? yes\n")
            return True
        return self._ask_terminal(question)

    def _ask_terminal(self, question: str) -> bool:
        while True:
            sys.stdout.write(f"{question}? [yn] ")
            sys.stdout.flush()
            line = sys.stdin.readline()
            if not line:  # EOF: like fsck_ffs, take it as no
                self._emit(f"\n{question}? no\n")
                self.resolved = False
                return False
            c = line.strip()[:1].lower()
            if c in ("y", "n"):
                self.lines.append(f"{question}? {'yes' if c == 'y' else 'no'}")
                if c == "n":
                    self.resolved = False
                return c == "y"

    def ask(self, text: str, question: str, preen_action: str | None = None, **info: Any) -> bool:
        """Report ``text`` and ask ``question``. In preen mode, a repair preen may make is done
        without asking and noted as ``(preen_action)``; any other is fatal."""
        if self.preen:
            if preen_action is None:
                self.fatal(text, **info)
            self._emit(f"{self.devname}: {text} ({preen_action})")
            self._record(text, question, preen_action, info)
            return True
        self._emit(text)
        ok = self.reply(question)
        self._record(text, question, "yes" if ok else "no", info)
        return ok

    # ---- progress (terminal only) ----
    def progress(self, done: int, total: int) -> None:
        if self.show_progress and total:
            sys.stderr.write(f"\r{self.phase}: {100 * done // total:3d}%")
            sys.stderr.flush()
            self._progress_shown = True

    def progress_done(self) -> None:
        if self._progress_shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._progress_shown = False

    def json_report(self, summary: dict[str, Any], code: int, modified: bool) -> str:
        return json.dumps({"device": self.devname, "exit": code, "modified": modified,
                           "resolved": self.resolved, "summary": summary,
                           "findings": self.findings}, indent=1)
