"""The command line: one subcommand per user verb.

    threadwise bench         the matrix: workloads x backends x workers x interpreters
    threadwise claims        the blog post's claims C1-C8, verdicts from this run
    threadwise interpreters  what Pythons are here and what they can do
    threadwise probe         how much a running program holds and waits on the GIL
    threadwise advise        which backend wins for your function
    threadwise report        a self-contained HTML report;  threadwise export: pyperf JSON

Every error a user can cause ends in a three-part message (what happened, the
likely cause, the fix) and exit status 2; Ctrl-C ends with 130 after saying
what was kept.  Subcommands that live in their own packages (probe, advise,
report, export) plug in through ``add_parser(subparsers)``.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
from typing import NoReturn, Optional, Sequence

from . import __version__
from .errors import ThreadwiseError, UsageError

#: each subcommand's module has add_parser(subparsers); bench, claims and interpreters are in bench/cli.py
PLUGINS = ("threadwise.bench.cli", "threadwise.probe.cli", "threadwise.executor.cli",
           "threadwise.report.cli")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in threadwise's three parts (and still exit 2)."""

    def error(self, message: str) -> NoReturn:
        err = UsageError("bad command line: %s" % message,
                         "an option is misspelled, missing its value, or not valid for %s" % self.prog,
                         "see: %s --help" % self.prog)
        sys.stderr.write("threadwise: error: " + err.message() + "\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="threadwise", description="Will threads make my Python code faster? "
                     "Measured on this machine, these interpreters, your code.")
    parser.add_argument("--version", action="version", version="threadwise " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    for mod in PLUGINS:
        importlib.import_module(mod).add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["probe"]:
        # the probe starts the user's program: as soon as possible, without loading the
        # other subcommands (the executor, rich), so a wrapped run costs ~40 ms, not ~150
        from .probe import cli as probe_cli
        return probe_cli.main(argv[1:], parser_class=_Parser)
    from rich.console import Console
    from rich.markup import escape
    # piped output (CI logs, `| less`) gets a readable width instead of rich's 80 columns
    console = Console() if sys.stdout.isatty() else Console(width=120)
    err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())  # CI logs: one message, one line
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # SIGTERM (a CI runner's cancel, `kill PID`) ends a run like Ctrl-C: every finally runs,
    # so no agent, echo server or worker is left behind and what was measured is kept
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return int(args.func(args, console, err) or 0)
    except ThreadwiseError as e:
        err.print("[bold red]threadwise: error:[/] " + escape(e.message()), highlight=False)
        return e.exit_code
    except KeyboardInterrupt:
        err.print("\nInterrupted.")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
