"""A command line read without argparse, for the command lines it is sure of; argparse for the rest.

Importing argparse brings re (with enum and re's parser and compiler), gettext and, at its first
message look-up, locale; building a command's parser and parsing cost more, mostly gettext
searching the disk for a catalogue on every ``_()``. Reading ``p2k find IMG /`` that way took
5.9-6.1 ms of a fresh interpreter (when nothing else has imported re), this module 0.3 ms: an
eighth of the 44 ms ``p2k find`` took on 10,000 files, where NetBSD's ``fsu_find`` (16 ms) parses
with getopt(3) for nothing.

The commands keep declaring their options once, in their ``register(sub)``; this module records
the same calls (``add_parser``, ``add_argument``, ``set_defaults``) and reads a command line with
getopt's rules for the subset it is sure about: store/store_true/store_false options, clustered
short flags (``-lR``), an option's value as ``-o X``, ``-oX`` or ``--opt=X``, ``-name X``, choices,
operands with nargs ``?``, ``*``, ``+`` or one, dealt by p2k.cli.imagearg.settle_operands exactly
as after argparse (or, for a command without an IMAGE, one operand declaration given one run of
words). Anything else declines (``parse_quickly`` returns None) and p2k.cli.main hands
the line to argparse, which gives the result or the message it always gave: ``-h``/``--help``,
``--version``, ``--``, an unknown or abbreviated option, a missing value or operand, a bad choice,
a word that looks like a negative number, a declaration this module does not know (a type, a
group, an append action...). tests/cli/test_quickparse.py checks on generated command lines that
whenever this module answers, argparse gives the very same namespace.
"""

from __future__ import annotations

from p2k.cli.imagearg import NOT_GIVEN, hide_operand_defaults, settle_operands

TYPE_CHECKING = False  # typing's, without importing it (p2k.lazy)
if TYPE_CHECKING:
    from typing import Any, NoReturn

SUPPRESS = "==SUPPRESS=="  # argparse.SUPPRESS's value, spelt out: importing argparse is what this saves

# add_parser keywords that change only the help page; any other (prefix_chars, allow_abbrev,
# aliases...) changes parsing, and the command goes to argparse
_HELP_ONLY = frozenset({"help", "description", "epilog", "formatter_class", "usage", "prog", "add_help"})
_KINDS = {None: "store", "store": "store", "store_true": "flag", "store_false": "flag", "help": "exit",
          "version": "exit"}


class Decline(Exception):
    """The command line (or a declaration) has something argparse might read differently."""


class Namespace:
    """What argparse.Namespace is to a command: attributes to read (and ``in``)."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    if TYPE_CHECKING:
        # as argparse.Namespace is typed: any attribute, read or set
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"


class Option:
    """One add_argument: the fields argparse.Action has that parsing and settle_operands read."""

    def __init__(self, option_strings: list[str], dest: str, kind: str, *, nargs: int | str | None = None,
                 default: Any = None, metavar: str | None = None, choices: Any = None, const: bool = True) -> None:
        self.option_strings = option_strings
        self.dest = dest
        self.kind = kind  # "store" (takes one value), "flag" (stores const), "exit" (help, version)
        self.const = const  # store_true's True, store_false's False
        self.nargs = nargs
        self.default = default
        self.metavar = metavar
        self.choices = choices


class _Dropped:
    """Another command's parser, or a group this module does not read: every call is dropped."""

    def __getattr__(self, name: str) -> Any:
        return self._drop

    def _drop(self, *args: Any, **kwargs: Any) -> _Dropped:
        return self


class QuickParser:
    """One command's declarations, read as add_argument gets them."""

    def __init__(self, add_help: bool = True) -> None:
        self._actions: list[Option] = []
        self._options: dict[str, Option] = {}
        self._defaults: dict[str, Any] = {}
        self.unsure: str | None = None  # why every command line of this command goes to argparse
        if add_help:
            self.add_argument("-h", "--help", action="help")

    def __getattr__(self, name: str) -> Any:
        """add_argument_group, add_mutually_exclusive_group...: argparse's alone."""
        if name.startswith("__"):
            raise AttributeError(name)
        return self._unsure(f"calls {name}")._drop

    def add_argument(self, *names: str, **kwargs: Any) -> Any:
        """Record what argparse would; a declaration outside the subset makes the command argparse's.
        Returns the record, as argparse returns the Action (a caller may set attributes on it)."""
        action = kwargs.pop("action", None)
        kind = _KINDS.get(action) if isinstance(action, str) or action is None else None
        kwargs.pop("help", None)
        kwargs.pop("version", None)
        unknown = set(kwargs) - {"dest", "default", "choices", "metavar", "nargs"}
        if kind is None or unknown or not names:
            return self._unsure(f"{names}: {action or ''} {sorted(unknown)}")
        default = kwargs.get("default", SUPPRESS if kind == "exit" else (action == "store_false") if kind == "flag"
                             else None)
        nargs = kwargs.get("nargs")
        if not names[0].startswith("-"):  # an operand
            if len(names) > 1 or nargs not in (None, "?", "*", "+") or "choices" in kwargs or kind != "store":
                return self._unsure(f"operand {names}")
            opt = Option([], kwargs.get("dest", names[0]), kind, nargs=nargs, default=default,
                         metavar=kwargs.get("metavar"))
            self._actions.append(opt)
            return opt
        if nargs is not None or default == SUPPRESS and kind != "exit":
            return self._unsure(f"option {names}: nargs or default")
        longs = [n for n in names if n.startswith("--")]
        dest = kwargs.get("dest") or (longs or names)[0].lstrip("-").replace("-", "_")  # argparse's rule
        opt = Option(list(names), SUPPRESS if kind == "exit" else dest, kind, default=default,
                     metavar=kwargs.get("metavar"), choices=kwargs.get("choices"), const=action != "store_false")
        self._actions.append(opt)
        for n in names:
            self._options[n] = opt
        return opt

    def _unsure(self, why: str) -> _Dropped:
        self.unsure = why
        return _Dropped()

    def set_defaults(self, **kwargs: Any) -> None:
        self._defaults.update(kwargs)
        for a in self._actions:  # argparse gives an action the parser default of its dest
            if a.dest in kwargs:
                a.default = kwargs[a.dest]

    def get_default(self, dest: str) -> Any:
        for a in self._actions:
            if a.dest == dest and a.default is not None:
                return a.default
        return self._defaults.get(dest)

    def error(self, message: str) -> NoReturn:
        """settle_operands' usage errors: argparse says them, with its usage line."""
        raise Decline(message)

    def parse(self, command: str, words: list[str]) -> Namespace:
        """The namespace argparse would give for ``p2k COMMAND WORDS``, the operands dealt."""
        values: dict[str, Any] = {}
        for a in self._actions:  # argparse: the first action of a dest gives its default
            if a.dest != SUPPRESS and a.dest not in values and a.default != SUPPRESS:
                values[a.dest] = a.default
        for dest, value in self._defaults.items():
            values.setdefault(dest, value)
        operands: list[str] = []
        runs, last = 0, -2  # runs of operands (options between them), the last operand's index
        i = 0
        while i < len(words):
            w = words[i]
            i += 1
            if w[:1] != "-" or w == "-":
                runs += last != i - 2
                last = i - 1
                operands.append(w)
            elif w[:2] == "--" or w in self._options:
                name, eq, value = w.partition("=")
                opt = self._options.get(name if w[:2] == "--" else w)
                if opt is None or eq and (opt.kind != "store" or not value or value[0] == "-"):
                    raise Decline(w)  # "--", unknown or abbreviated, "--flag=" (argparse: an error)
                if opt.kind == "store" and not eq:
                    value = self._value(words, i)
                    i += 1
                self._take(values, opt, value)
            else:
                i = self._cluster(values, w, words, i)
        args = Namespace(command=command)
        args.__dict__.update(values)
        if "_image_operand" not in values:
            self._one_operand(args, operands, runs)
            return args
        for a in self._actions:
            if not a.option_strings:
                setattr(args, a.dest, NOT_GIVEN)  # every operand is dealt by settle_operands, in order
        settle_operands(self, args, operands)
        return args

    def _one_operand(self, args: Namespace, operands: list[str], runs: int) -> None:
        """The operands of a command without an IMAGE to settle (dumpfs, parts, info, sysctl, demo),
        read only when it declares at most one and its words come in one run: argparse gives a
        run after an option to the next declaration, or to nothing (an error)."""
        actions = [a for a in self._actions if not a.option_strings]
        if len(actions) > 1 or runs > 1 or (operands and not actions):
            raise Decline("operands")
        if not actions:
            return
        a, n = actions[0], len(operands)
        if a.nargs is None and n == 1:
            value: Any = operands[0]
        elif a.nargs == "?" and n <= 1:
            value = operands[0] if operands else a.default
        elif a.nargs == "*" or a.nargs == "+" and n:
            value = operands or (a.default if a.default is not None else [])
        else:
            raise Decline("operands")
        setattr(args, a.dest, value)

    def _cluster(self, values: dict[str, Any], w: str, words: list[str], i: int) -> int:
        """``-lR``, ``-oX``, ``-lo X``: getopt's reading, which argparse shares when the word's first
        two characters name an option and no option starts with the whole word (``-ty`` could be
        ``-t y`` or ``-type``; argparse calls that ambiguous). Returns the next word's index."""
        if "=" in w or any(s.startswith(w) for s in self._options):
            raise Decline(w)  # -o=X: Python versions differ on the '='
        rest = w[1:]
        while rest:
            opt = self._options.get("-" + rest[0])
            if opt is None:
                raise Decline(w)
            rest = rest[1:]
            if opt.kind == "store":
                if rest:
                    if rest[0] == "-":
                        raise Decline(w)
                    self._take(values, opt, rest)
                    return i
                self._take(values, opt, self._value(words, i))
                return i + 1
            self._take(values, opt, "")
        return i

    @staticmethod
    def _value(words: list[str], i: int) -> str:
        """An option's value, the next word: argparse takes it only when it does not look like an
        option (a word starting with '-' but "-" itself)."""
        if i >= len(words) or (words[i][:1] == "-" and words[i] != "-"):
            raise Decline("missing value")
        return words[i]

    @staticmethod
    def _take(values: dict[str, Any], opt: Option, value: str) -> None:
        if opt.kind == "exit":
            raise Decline(opt.option_strings[0])  # --help, --version: argparse prints them
        if opt.kind == "flag":
            values[opt.dest] = opt.const
        elif opt.choices is not None and value not in opt.choices:
            raise Decline(f"{value!r} not a choice")
        else:
            values[opt.dest] = value


class _Commands:
    """The subparsers action as a module's ``register`` sees it: the named command's declarations
    are recorded, the others' dropped."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.parser: QuickParser | None = None
        self.unsure: str | None = None

    def __getattr__(self, name: str) -> Any:
        """Anything but add_parser (add_subparsers' other methods): argparse's alone."""
        if name.startswith("__"):
            raise AttributeError(name)
        self.unsure = f"sub.{name}"
        return _Dropped()._drop

    def add_parser(self, name: str, **kwargs: Any) -> QuickParser | _Dropped:
        if name != self.command:
            return _Dropped()
        self.parser = QuickParser(add_help=kwargs.get("add_help", True))
        if set(kwargs) - _HELP_ONLY:
            self.parser.unsure = f"add_parser({sorted(set(kwargs) - _HELP_ONLY)})"
        return self.parser


def parse_quickly(module: str, command: str, words: list[str]) -> Namespace | None:
    """``p2k COMMAND WORDS`` read from ``module``'s declarations of COMMAND, or None when argparse
    must read it. An image command's operands are the words in order, whatever argparse's own
    grouping, dealt by settle_operands; another command's, in one run to its one declaration."""
    commands = _Commands(command)
    # __import__, not importlib.import_module: the importlib package imports warnings (0.3 ms)
    __import__(module, fromlist=("register",)).register(commands)
    p = commands.parser
    if p is None or p.unsure or commands.unsure:
        return None
    if p.get_default("_image_operand") is not None:
        hide_operand_defaults(p)
    try:
        return p.parse(command, words)
    except Decline:
        return None
