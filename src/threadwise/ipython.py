"""IPython and Jupyter: ``%load_ext threadwise`` adds ``%advise`` and ``%probe`` / ``%%probe``.

::

    %advise FN ITEMS [-w N] [-s SECONDS] [-m N] [-b threads,processes] [-o]
        FN, ITEMS: expressions in the session's namespace (like %timeit's statement)
        --> threadwise.advise(fn, items, ...)
        --> AdviceView: the table of ``threadwise advise`` (executor/cli.print_advice
            renders it; its rich Table becomes an HTML <table> in Jupyter)
    %probe [-i SECONDS] [-o] STATEMENT        %%probe [-i SECONDS] [-o]  + a cell
        --> the code runs in the session's namespace under threadwise.gil_monitor()
        --> ProbeView of the GilStats: GIL held, waited on, parallelism, threads

A view is displayed, not printed: IPython hands the frontend both forms and it
picks one -- ``_repr_html_`` (a table) in Jupyter, ``_repr_pretty_`` (the same
plain text as the command line) in a terminal.  ``-o`` also returns the measured
object (:class:`threadwise.Advice`, :class:`threadwise.GilStats`).

Bad input (an undefined name, an unknown option, a function that fails on the
items) raises IPython's ``UsageError``: IPython prints its message -- what
happened, the likely cause, the fix -- and no traceback.

This module imports IPython; ``import threadwise`` does not import it
(``threadwise.load_ipython_extension`` imports this module when called).
"""
from __future__ import annotations

import ast
import html
import io
import shutil
from typing import Any, List, Optional, Sequence, Tuple

from IPython.core.error import UsageError
from IPython.core.magic import (Magics, line_cell_magic, line_magic, magics_class,
                                needs_local_scope, no_var_expand, output_can_be_silenced)
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display

from .errors import ThreadwiseError

__all__ = ["load_ipython_extension", "ThreadwiseMagics", "AdviceView", "ProbeView"]


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext threadwise``: registers ``%advise`` and ``%probe``."""
    ipython.register_magics(ThreadwiseMagics)


def _usage(what: str, why: str = "", fix: str = "") -> UsageError:
    """IPython's UsageError (printed without a traceback) with threadwise's three parts."""
    return UsageError(ThreadwiseError(what, why, fix).message())


def _text_width() -> int:
    return max(80, shutil.get_terminal_size((100, 24)).columns)


def _plain_console(width: Optional[int] = None, record: bool = False) -> Any:
    """A rich Console that writes plain text into a string (never to Jupyter itself)."""
    from rich.console import Console
    return Console(file=io.StringIO(), width=width or _text_width(), force_terminal=False,
                   force_jupyter=False, color_system=None, record=record, highlight=False)


# -- %advise's view ----------------------------------------------------------------
class _Collector:
    """Stands in for a rich Console: keeps what ``print_advice`` prints, in order."""

    def __init__(self) -> None:
        self.printed: List[Any] = []

    def print(self, *objects: Any, **_options: Any) -> None:
        self.printed.extend(objects)


class _MarkupHTML:
    """rich markup (``[bold]x[/bold]``) to HTML with inline styles, by rich's own exporter."""

    def __init__(self) -> None:
        self.console = _plain_console(width=10000, record=True)

    def __call__(self, markup: Any) -> str:
        self.console.print(markup, highlight=False, soft_wrap=True)
        return str(self.console.export_html(inline_styles=True, code_format="{code}",
                                            clear=True)).strip("\n")


def _table_html(table: Any, to_html: _MarkupHTML, bold_row: Any = None) -> str:
    """A rich Table as an HTML <table>: its title, headers and cells, as rich holds them."""
    columns = list(table.columns)
    cells = [list(c.cells) for c in columns]
    rows = len(cells[0]) if cells else 0
    out = ['<table class="threadwise">']
    if table.title:
        out.append("<caption>%s</caption>" % to_html(table.title))
    align = ['text-align: %s' % ("left" if c.justify in ("left", "default") else c.justify)
             for c in columns]
    out.append("<thead><tr>%s</tr></thead>" % "".join(
        '<th style="%s">%s</th>' % (a, to_html(c.header)) for a, c in zip(align, columns)))
    out.append("<tbody>")
    for i in range(rows):
        row = [str(col[i]) for col in cells]
        style = ' style="font-weight: bold"' if bold_row is not None and bold_row(row) else ""
        out.append("<tr%s>%s</tr>" % (style, "".join(
            '<td style="%s">%s</td>' % (a, to_html(c)) for a, c in zip(align, row))))
    out.append("</tbody></table>")
    return "".join(out)


class AdviceView:
    """How ``%advise`` shows an :class:`threadwise.Advice`: the text of
    ``threadwise advise`` in a terminal, an HTML table in Jupyter."""

    def __init__(self, advice: Any, name: str = "fn") -> None:
        self.advice = advice
        self.name = name

    def text(self, width: Optional[int] = None) -> str:
        from .executor.cli import print_advice
        console = _plain_console(width)
        print_advice(self.advice, self.name, console=console)
        return str(console.file.getvalue()).rstrip("\n")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def __repr__(self) -> str:
        return "<AdviceView of %s: %s>" % (self.name, self.advice.sentence)

    def _is_choice(self, row: List[str]) -> bool:
        label = row[0].split("[")[0].replace("free threads", "threads")
        return label == self.advice.backend and row[1] == str(self.advice.workers)

    def _repr_html_(self) -> str:
        from .executor.cli import print_advice
        collected = _Collector()
        print_advice(self.advice, self.name, console=collected)
        to_html = _MarkupHTML()
        parts = ['<div class="threadwise-advise">']
        for obj in collected.printed:
            if hasattr(obj, "columns") and hasattr(obj, "add_row"):  # the rich Table
                parts.append(_table_html(obj, to_html, self._is_choice))
            else:
                parts.append("<p>%s</p>" % to_html(obj))
        parts.append("</div>")
        return "\n".join(parts)


# -- %probe's view -------------------------------------------------------------------
def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else "%.1f%%" % (100 * x)


def _ci(ci: Optional[Sequence[float]]) -> str:
    return "" if ci is None else " (95%% CI %.1f-%.1f%%)" % (100 * ci[0], 100 * ci[1])


class ProbeView:
    """How ``%probe`` shows a :class:`threadwise.GilStats`: the text of
    ``GilStats.report()`` in a terminal, an HTML table in Jupyter."""

    def __init__(self, stats: Any, title: str = "threadwise %probe",
                 note: Optional[str] = None) -> None:
        self.stats = stats
        self.title = title
        self.note = note

    def text(self) -> str:
        from .probe.stats import format_report
        text = format_report(self.stats, title=self.title)
        return text + ("\n  note: " + self.note if self.note else "")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def __repr__(self) -> str:
        return "<ProbeView: GIL held %s, waited %s, parallelism %s>" % (
            _pct(self.stats.gil_held), _pct(self.stats.gil_wait),
            "n/a" if self.stats.parallelism is None else "%.2f" % self.stats.parallelism)

    def rows(self) -> List[Tuple[str, str]]:
        """(figure, value) pairs: the figures of GilStats.report(), one per row."""
        s = self.stats
        rows: List[Tuple[str, str]] = []
        if s.gil is False:
            rows.append(("GIL", "none: Python threads run in parallel here"))
        elif s.gil is None:
            rows.append(("GIL", "unknown (see notes)"))
        if s.gil and s.gil_held is None:
            rows.append(("GIL held", "n/a (no samples: the code ended within a sampling gap)"))
        if s.gil_held is not None:
            rows.append(("GIL held", "%s of wall time%s" % (_pct(s.gil_held), _ci(s.gil_held_ci))))
        if s.gil_wait is not None:
            waiting = "" if s.waiting is None else ", %.2f threads waiting on average" % s.waiting
            rows.append(("GIL waited on", "%s of wall time%s%s" % (
                _pct(s.gil_wait), _ci(s.gil_wait_ci), waiting)))
        if s.longest_stall_s and s.gil:
            rows.append(("longest stall", "%.1f ms (a thread waiting for the GIL)"
                         % (1000 * s.longest_stall_s)))
        if s.parallelism is not None:
            rows.append(("parallelism", "%.2f (CPU %.2f s / wall %.2f s)" % (
                s.parallelism, s.cpu_s or 0.0, s.wall_s)))
        else:
            rows.append(("wall", "%.2f s" % s.wall_s))
        if s.switches_per_s is not None and s.gil:
            rows.append(("GIL switches", "%.0f/s" % s.switches_per_s))
        if s.samples:
            rows.append(("samples", "%d every %.2f ms on average (%s)" % (
                s.samples, 1000 * s.interval_s, s.method)))
        for e in s.gil_enabled_by:
            rows.append(("GIL enabled", "by importing %s%s" % (
                e.module or "an unknown module", "" if e.at_s is None else " at %.3f s" % e.at_s)))
        return rows

    def _repr_html_(self) -> str:
        s = self.stats
        esc = html.escape
        head = self.title + (" - " + s.interpreter if s.interpreter else "")
        out = ['<div class="threadwise-probe"><table class="threadwise">',
               "<caption>%s</caption><tbody>" % esc(head)]
        for k, v in self.rows():
            out.append('<tr><th style="text-align: left">%s</th><td style="text-align: left">'
                       '%s</td></tr>' % (esc(k), esc(v)))
        out.append("</tbody></table>")
        if s.threads:
            r = ' style="text-align: right"'
            out.append('<table class="threadwise"><thead><tr><th%s>tid</th>'
                       '<th style="text-align: left">thread</th><th%s>CPU s</th><th%s>held</th>'
                       "<th%s>waited</th></tr></thead><tbody>" % (r, r, r, r))
            for t in sorted(s.threads, key=lambda t: -t.cpu_s)[:12]:
                out.append('<tr><td%s>%d</td><td style="text-align: left">%s</td><td%s>%.3f</td>'
                           "<td%s>%s</td><td%s>%s</td></tr>" % (
                               r, t.tid, esc(t.name or "?"), r, t.cpu_s, r,
                               "" if t.gil_held is None else _pct(t.gil_held), r,
                               "" if t.gil_wait is None else _pct(t.gil_wait)))
            if len(s.threads) > 12:
                out.append('<tr><td colspan="5">... and %d more</td></tr>' % (len(s.threads) - 12))
            out.append("</tbody></table>")
        for n in list(s.notes) + ([self.note] if self.note else []):
            out.append("<p>note: %s</p>" % esc(n))
        out.append("</div>")
        return "\n".join(out)


# -- %advise's arguments -----------------------------------------------------------
def _advise_parser() -> MagicArgumentParser:
    p = MagicArgumentParser(prog="%advise", usage="%advise FN ITEMS [options]")
    p.add_argument("-w", "--workers", type=int, default=None,
                   help="workers (default: one per CPU)")
    p.add_argument("-s", "--sample-seconds", type=float, default=1.0, dest="sample_s",
                   help="seconds of serial work to sample (default 1.0)")
    p.add_argument("-m", "--max-items", type=int, default=None, dest="max_items",
                   help="at most this many sample items")
    p.add_argument("-b", "--backend", "--backends", dest="backends", default=None,
                   help="comma-separated subset of threads,processes,interpreters")
    p.add_argument("-o", action="store_true", dest="return_advice",
                   help="also return the Advice (r = %%advise -o fn items)")
    return p


_ADVISE_PARSER = _advise_parser()


def _words(line: str) -> List[str]:
    """Split at whitespace outside brackets and string literals: ``f [1, 2]`` -> 2 words."""
    words: List[str] = []
    cur: List[str] = []
    depth = 0
    quote: Optional[str] = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote is not None:
            if ch == "\\":
                cur.append(line[i:i + 2])
                i += 2
                continue
            if line.startswith(quote, i):
                cur.append(quote)
                i += len(quote)
                quote = None
                continue
        elif ch in "'\"":
            quote = line[i:i + 3] if line[i:i + 3] in ("'''", '"""') else ch
            cur.append(quote)
            i += len(quote)
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch.isspace() and depth == 0:
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


def _is_expression(src: str) -> bool:
    try:
        ast.parse(src, mode="eval")
    except (SyntaxError, ValueError):
        return False
    return True


def parse_advise_line(line: str) -> Tuple[Any, str, str]:
    """``%advise``'s line -> (options, FN source, ITEMS source).

    Options may stand before, between or after FN and ITEMS (``-w 2``,
    ``--workers 2``, ``--workers=2``).  FN and ITEMS are the first split of the
    rest into two Python expressions: ``lambda x: x + 1 range(10)`` splits after
    ``x + 1``; put parentheses around an expression to split elsewhere."""
    actions = _ADVISE_PARSER._option_string_actions
    opts: List[str] = []
    rest: List[str] = []
    words = _words(line)
    i = 0
    while i < len(words):
        w = words[i]
        name = w.split("=", 1)[0] if w.startswith("--") else w
        action = actions.get(name)
        if action is None:
            rest.append(w)
        elif action.nargs == 0 or "=" in w:
            opts.append(w)
        elif i + 1 < len(words):
            opts.extend([w, words[i + 1]])
            i += 1
        else:
            raise _usage("%%advise: option %s needs a value" % w, "",
                         "write it as %s VALUE, e.g. %%advise fn items -w 4" % w)
        i += 1
    args = _ADVISE_PARSER.parse_args(opts)
    if len(rest) < 2:
        raise _usage("%%advise needs a function and its items, got %r" % line.strip(),
                     "FN or ITEMS is missing",
                     "write %advise fn items, e.g. %advise h range(64) (both are names or "
                     "expressions of this session)")
    for k in range(1, len(rest)):
        fn_src, items_src = " ".join(rest[:k]), " ".join(rest[k:])
        if _is_expression(fn_src) and _is_expression(items_src):
            return args, fn_src, items_src
    raise _usage("%%advise can't read %r as two Python expressions FN ITEMS" % " ".join(rest),
                 "a syntax error, or an expression with spaces that splits in an unexpected way",
                 "separate FN and ITEMS by a space and put parentheses around either if it has "
                 "spaces in it: %advise (lambda x: x * 2) range(100)")


@magics_class
class ThreadwiseMagics(Magics):
    """``%advise`` and ``%probe`` / ``%%probe``."""

    @property
    def _ip(self) -> Any:
        """The shell these magics run in (typed Any: compile() takes ASTs too)."""
        if self.shell is None:  # pragma: no cover - registered magics always have one
            raise UsageError("threadwise's magics are not registered with a shell")
        return self.shell

    def _eval(self, src: str, role: str, local_ns: Any) -> Any:
        try:
            code = compile(src, "<%%advise %s>" % role, "eval")
            return eval(code, self._ip.user_ns, local_ns)
        except NameError as e:
            raise _usage("%%advise: %s %r: %s" % (role, src, e),
                         "the name is not defined in this session (a typo, or its cell has not "
                         "run yet)",
                         "define it first, or pass an expression: %advise fn items") from None
        except Exception as e:
            raise _usage("%%advise: evaluating %s %r raised %s: %s" % (
                role, src, type(e).__name__, e), "", "fix the expression") from None

    @no_var_expand
    @needs_local_scope
    @line_magic
    def advise(self, line: str = "", local_ns: Any = None) -> Any:
        """Measure FN over a sample of ITEMS on every backend and recommend one.

        ::

          %advise FN ITEMS [-w N] [-s SECONDS] [-m N] [-b threads,processes] [-o]

        FN and ITEMS are names or expressions of this session, as in
        ``threadwise.advise(FN, ITEMS)``: ``%advise h items``,
        ``%advise json.dumps [data] * 64``.  Prints the table of backends and the
        recommendation (an HTML table in Jupyter).  Options (before, between or
        after FN and ITEMS):

          -w, --workers N          workers (default: one per CPU)
          -s, --sample-seconds S   seconds of serial work to sample (default 1.0)
          -m, --max-items N        at most this many sample items
          -b, --backend(s) LIST    comma-separated subset of threads,processes,interpreters
          -o                       also return the Advice: ``r = %advise -o h items``
        """
        args, fn_src, items_src = parse_advise_line(line)
        fn = self._eval(fn_src, "FN", local_ns)
        items = self._eval(items_src, "ITEMS", local_ns)
        backends = None
        if args.backends:
            backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        from .executor.advise import advise
        try:
            advice = advise(fn, items, workers=args.workers, sample_s=args.sample_s,
                            max_items=args.max_items, backends=backends)
        except ThreadwiseError as e:
            message = e.message()
            raise UsageError(("%" if message.startswith("advise: ") else "%advise: ")
                             + message) from None
        display(AdviceView(advice, fn_src))
        return advice if args.return_advice else None

    @no_var_expand
    @needs_local_scope
    @line_cell_magic
    @output_can_be_silenced
    def probe(self, line: str = "", cell: Optional[str] = None, local_ns: Any = None) -> Any:
        """Run code under ``threadwise.gil_monitor()``: how much it held and waited for the GIL.

        ::

          %probe [-i SECONDS] [-o] STATEMENT
          %%probe [-i SECONDS] [-o]
          ...a cell...

        Prints the share of wall time the GIL was held and waited for, the
        parallelism (CPU time / wall time) and each thread's share (an HTML table
        in Jupyter), then returns the value of the last expression, as ``%time``
        does.  ``-i``: mean gap between samples (default: 1 ms, sparser after the
        first second); ``-o``: return the GilStats instead.  Threads the code
        leaves running are measured until it returns, not after.
        """
        opts, stmt = self.parse_options(line, "i:o", posix=False, strict=False,
                                        preserve_non_opts=True)
        if cell is not None and stmt.strip():
            raise _usage("%%%%probe takes options only on its own line, got %r" % stmt.strip(),
                         "code after %%probe on the magic's line",
                         "put the code in the cell's body, below %%probe")
        source = cell if cell is not None else stmt
        if not source.strip():
            raise _usage("%probe needs code to run", "",
                         "write %probe STATEMENT, or %%probe at the top of a cell")
        interval: Optional[float] = None
        if "i" in opts:
            try:
                interval = float(opts["i"])
            except ValueError:
                raise _usage("%%probe -i wants seconds, got %r" % opts["i"], "",
                             "e.g. %probe -i 0.001 STATEMENT") from None
        code = self._ip.transform_cell(source)
        # cached, so that a traceback from the code shows its lines
        filename = self._ip.compile.cache(code)
        tree = self._ip.transform_ast(self._ip.compile.ast_parse(code, filename=filename))
        last: Optional[ast.Expression] = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body[-1].value)
            tree = ast.Module(tree.body[:-1], [])
        body = self._ip.compile(tree, filename, "exec")
        tail = self._ip.compile(last, filename, "eval") if last is not None else None

        from .probe import gil_monitor
        try:
            monitor = gil_monitor(interval).start()
        except ThreadwiseError as e:
            raise UsageError("%probe: " + e.message()) from None
        note = None
        out = None
        try:
            exec(body, self._ip.user_ns, local_ns)
            if tail is not None:
                out = eval(tail, self._ip.user_ns, local_ns)
        except BaseException as e:
            note = "the code raised %s: the figures cover the run until then" % type(e).__name__
            raise
        finally:
            stats = monitor.stop()
            display(ProbeView(stats, "threadwise %%%sprobe" % ("%" if cell is not None else ""),
                              note))
        return stats if "o" in opts else out
