"""``%load_ext threadwise`` in a real IPython shell: ``%advise``, ``%probe``, ``%%probe``.

The shell is IPython's own ``InteractiveShell`` (what a terminal IPython and a
Jupyter kernel are built on); cells run through ``run_cell`` as typed.  The
figures asserted are properties that hold on a busy 2-core machine: two
spinning pure-Python threads keep the GIL held; a recommendation is printed.
"""
import html
import re

import pytest

pytest.importorskip("IPython", reason="IPython is not installed (pip install -e '.[ipython]')")

from IPython.core.error import UsageError  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

from threadwise.ipython import AdviceView, ProbeView, parse_advise_line  # noqa: E402

SETUP = """\
import hashlib
B = bytes(1 << 20)
def h(i):
    return hashlib.sha256(B).hexdigest()
items = list(range(32))
"""

SPIN = """\
import threading, time
def spin(stop):
    while time.monotonic() < stop:
        pass
stop = time.monotonic() + 0.6
ts = [threading.Thread(target=spin, args=(stop,), name="spin-%d" % i) for i in range(2)]
for t in ts:
    t.start()
for t in ts:
    t.join()
"""


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "threadwise")
    result = shell.run_cell(SETUP)
    assert result.success, result.error_in_exec
    return shell


def _share(pattern, text):
    m = re.search(pattern, text)
    assert m, "no %r in:\n%s" % (pattern, text)
    return float(m.group(1))


# -- %advise ------------------------------------------------------------------------
def test_advise_prints_the_table_and_a_recommendation(ip, capsys):
    result = ip.run_cell("%advise h items -s 0.2")
    out, err = capsys.readouterr()
    assert result.success, (result.error_in_exec, err)
    assert "threadwise advise h: 32 items sampled of 32" in out
    for backend in ("serial", "threads", "processes"):
        assert re.search(r"^%s\s+\d" % backend, out, re.M), out
    # a busy machine makes advise say so instead of choosing ("inconclusive: ...")
    assert re.search(r"^recommendation: (serial|threads|processes|inconclusive)", out, re.M), out


def test_advise_takes_expressions_and_options_anywhere(ip, capsys):
    advice = ip.run_line_magic("advise", "-o (lambda x: x * 2) range(40) -b threads -s 0.05")
    out = capsys.readouterr().out
    assert advice.sampled == 40 and advice.total == 40
    assert {r.backend for r in advice.results} == {"serial", "threads"}
    assert "threadwise advise (lambda x: x * 2): 40 items" in out
    assert "recommendation:" in out


def test_advise_view_is_an_html_table_for_jupyter_and_text_for_a_terminal(ip, capsys):
    advice = ip.run_line_magic("advise", "h items -o --backend threads -s 0.05")
    capsys.readouterr()
    bundle, _ = ip.display_formatter.format(AdviceView(advice, "h"))
    assert {"text/html", "text/plain"} <= set(bundle)
    page = bundle["text/html"]
    assert page.count("<table") == 1 and "<th style=\"text-align: left\">backend</th>" in page
    assert re.search(r"<td[^>]*>threads</td>", page), page
    assert "recommendation:</span> " + html.escape(advice.sentence.split(";")[0]) in page
    assert "recommendation: " in bundle["text/plain"] and "<" not in bundle["text/plain"][:40]


@pytest.mark.parametrize("cell, message", [
    ("%advise nope items", r"FN 'nope': name 'nope' is not defined"),
    ("%advise h nothing_here", r"ITEMS 'nothing_here': name 'nothing_here' is not defined"),
    ("%advise h", r"needs a function and its items"),
    ("%advise h items -w", r"option -w needs a value"),
    ("%advise h items -w two", r"invalid int value: 'two'"),
    ("%advise items h", r"fn must be callable"),
    ("%advise h items -b gpu", r"backends must name some of"),
    ("%advise (lambda x: 1 / x) range(3) -b threads", r"fn raised ZeroDivisionError on item #0"),
    ("%probe", r"%probe needs code to run"),
    ("%%probe x = 1\ny = 2", r"%%probe takes options only on its own line"),
])
def test_bad_input_gives_a_message_not_a_traceback(ip, capsys, cell, message):
    result = ip.run_cell(cell)
    out, err = capsys.readouterr()
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    assert re.search(message, err), err
    # no traceback of threadwise or IPython (an ItemError quotes the user's fn's own)
    assert "run_line_magic" not in out + err and "threadwise/" not in out + err, err
    assert err.count("Traceback") == (1 if "ZeroDivisionError" in message else 0), err


def test_advise_line_splits_into_two_expressions():
    args, fn, items = parse_advise_line("lambda x: x + 1 range(10) --workers=3")
    assert (fn, items, args.workers) == ("lambda x: x + 1", "range(10)", 3)
    args, fn, items = parse_advise_line("-w 2 f [1, 2, 3] -b threads,processes -o")
    assert (fn, items, args.workers, args.backends, args.return_advice) == (
        "f", "[1, 2, 3]", 2, "threads,processes", True)
    args, fn, items = parse_advise_line("json.dumps [{'a b': 1}] * 64 -s 0.5")
    assert (fn, items, args.sample_s) == ("json.dumps", "[{'a b': 1}] * 64", 0.5)
    with pytest.raises(UsageError, match="two Python expressions"):
        parse_advise_line("f (1, ")


# -- %probe / %%probe -----------------------------------------------------------------
def test_cell_probe_over_two_spinning_threads_shows_the_gil_held(ip, capsys):
    result = ip.run_cell("%%probe\n" + SPIN)
    out, err = capsys.readouterr()
    assert result.success, (result.error_in_exec, err)
    assert "threadwise %%probe" in out
    held = _share(r"GIL held\s+([\d.]+)% of wall time", out)
    waited = _share(r"GIL waited on\s+([\d.]+)% of wall time", out)
    parallelism = _share(r"parallelism\s+([\d.]+) \(CPU", out)
    # two threads that only run Python: one of them holds the GIL nearly all the time
    assert held >= 50, out
    assert 0 <= waited <= held, out
    assert 0 < parallelism < 2.5, out
    assert "spin-0" in out and "spin-1" in out


def test_cell_probe_returns_the_stats_with_o(ip, capsys):
    stats = ip.run_cell_magic("probe", "-o", SPIN)
    capsys.readouterr()
    assert stats.gil is True and stats.gil_held >= 0.5
    assert stats.gil_wait is not None and stats.gil_wait <= stats.gil_held
    assert {t.name for t in stats.threads} >= {"spin-0", "spin-1"}
    bundle, _ = ip.display_formatter.format(ProbeView(stats))
    assert "<table" in bundle["text/html"] and "GIL held" in bundle["text/html"]
    assert "spin-0" in bundle["text/html"]


def test_line_probe_returns_the_value_like_time(ip, capsys):
    value = ip.run_line_magic("probe", "sum(range(10 ** 5))")
    out = capsys.readouterr().out
    assert value == sum(range(10 ** 5))
    assert "threadwise %probe" in out and "parallelism" in out


def test_probe_shows_the_figures_then_raises_the_codes_error(ip, capsys):
    result = ip.run_cell("%probe 1 / 0")
    out, err = capsys.readouterr()
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert "the code raised ZeroDivisionError" in out


def test_the_extension_loads_lazily_from_the_package():
    import threadwise
    assert "load_ipython_extension" not in threadwise.__all__
    shell = InteractiveShell.instance()
    threadwise.load_ipython_extension(shell)  # what %load_ext calls
    assert {"advise", "probe"} <= set(shell.magics_manager.magics["line"])
    assert "probe" in shell.magics_manager.magics["cell"]
