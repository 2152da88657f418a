"""threadwise.report: the HTML page (content, escaping, bad input) and, in a real headless
Chromium, that it loads without errors, draws every plot, lists every claim and runs
no script -- at desktop and phone width, with screenshots under build/screenshots/.

The documents are real results files: a tiny real ``threadwise bench`` run, and a
document assembled with threadwise's own stats (summaries, speedups) and judged by
threadwise's own claims.judge, with hostile labels in every place a user could edit.
Each is written as JSON the way a user could edit it, and read back through the typed
model (``ResultsDocument.from_json``), the only way into the report.
"""
import copy
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from markupsafe import escape

from threadwise import environment
from threadwise.bench import claims, results, stats
from threadwise.bench.claims.experiments import GILCHECK_CALLS
from threadwise.bench.model import ResultsDocument
from threadwise.errors import ResultsFileError, ThreadwiseError
from threadwise.report import html, plots

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = os.environ.get("THREADWISE_CHROMIUM", "/usr/bin/chromium")
HOSTILE = "<script>alert(1)</script>"
HOSTILE_IMG = "<img src=x onerror=alert(2)>"
TRICKY = '$x$ "q" & --> id="a" url(#b)'


# --------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------
def _cell(interp, workload, backend, workers, per_s, baseline=None, start_method=None,
          label=None, warnings=(), tag="", per_task=False, gil=True, size=1000, tasks=4):
    """A cell as the runner writes it, its numbers from threadwise.bench.stats."""
    samples = [per_s * f for f in (1.0, 1.03, 0.98, 1.05, 1.01)]
    wall = stats.summarize(samples)
    cpu = stats.summarize([s * min(workers, 2) * (0.95 if gil is False else 0.5) for s in samples])
    key = results.cell_key(interp, workload, backend, workers, start_method) + ("|" + tag if tag else "")
    c = {"key": key, "interpreter": interp, "command": "/usr/bin/" + interp, "workload": workload,
         "workload_label": label or workload, "params": {}, "kind": workload, "backend": backend,
         "workers": workers, "start_method": start_method, "scaling": "strong", "tasks": tasks,
         "per_task": per_task, "tag": tag, "size": size, "status": "ok", "error": None,
         "warnings": list(warnings), "load_avg_start": 0.5, "started": "2026-01-01T00:00:00+0000",
         "gil_enabled": gil, "free_threaded": gil is False, "checksums_ok": True,
         "wall_s": wall.to_json(), "cpu_s": cpu.to_json(),
         "parallelism": stats.parallelism(wall.samples, cpu.samples)}
    if backend == "serial":
        c["speedup"], c["speedup_ci95"] = 1.0, [1.0, 1.0]
    else:
        sp = stats.speedup(baseline["wall_s"]["samples"], wall.samples)
        c["speedup"], c["speedup_ci95"] = sp.value, list(sp.ci95)
    return c


def _failed(interp, workload, backend, workers, status, message):
    return {"key": results.cell_key(interp, workload, backend, workers), "interpreter": interp,
            "workload": workload, "workload_label": workload, "backend": backend, "workers": workers,
            "start_method": None, "scaling": "strong", "status": status, "error": message,
            "warnings": [], "traceback": "Traceback (most recent call last):\n  " + HOSTILE}


def _interp_facts(label, impl, version, gil, free):
    return {"implementation": impl, "version": version, "gil_enabled": gil, "free_threaded": free,
            "switch_interval_s": 0.005, "start_methods": ["fork", "spawn", "forkserver"],
            "default_start_method": "fork", "subinterpreters": False,
            "command": "/usr/bin/" + label, "label": label}


def _judge(raw):
    """threadwise's own verdicts on a raw document, as the JSON a results file holds
    (through json: C8's evidence has integer keys, which JSON writes as text)."""
    return json.loads(json.dumps([v.to_json() for v in claims.judge(ResultsDocument.from_json(raw))]))


def full_raw():
    """Every section of the page, two interpreters (one GIL-free), and hostile labels: the
    JSON of a results file, as a user could edit it."""
    doc = results.new_document(environment.host(), {"command": "test", "note": HOSTILE}).to_json()
    doc["environment"]["cpu_model"] = "CPU " + HOSTILE
    doc["environment"]["usable_cores"] = 4
    doc["environment"]["cores"] = {"usable": 4, "logical": 4, "physical": 4, "affinity": 4,
                                   "quota": None, "derivation": "test: 4 usable " + HOSTILE}
    doc["interpreters"] = {
        "py-gil": _interp_facts("py-gil", "CPython", "3.13.0", True, False),
        "py-free": _interp_facts("py-free", "CPython", "3.13.0", False, True),
        HOSTILE: _interp_facts("hostile", HOSTILE_IMG, HOSTILE, True, False),
    }
    cells = []
    for interp, gil, par in (("py-gil", True, False), ("py-free", False, True), (HOSTILE, True, False)):
        base = _cell(interp, "cpu-python", "serial", 1, 0.4, gil=gil)
        cells.append(base)
        for w in (1, 2, 4):
            cells.append(_cell(interp, "cpu-python", "threads", w, 0.4 / w if par else 0.42, base, gil=gil,
                               warnings=["the standard deviation is 14% of the median " + HOSTILE]
                               if w == 4 else ()))
            cells.append(_cell(interp, "cpu-python", "processes", w, 0.4 / w * 1.1, base, gil=gil))
    base = cells[0]
    for sm in ("fork", "forkserver", "spawn"):
        cells.append(_cell("py-gil", "cpu-python", "processes", 4, 0.12, base, start_method=sm))
    tiny = _cell("py-gil", "cpu-python", "serial", 1, 0.01, tag="tiny", tasks=200)
    cells += [tiny, _cell("py-gil", "cpu-python", "processes", 4, 0.05, tiny, tag="tiny", per_task=True,
                          tasks=200)]
    for wl in ("sleep", "socket", "file-io", "hashlib", "zlib", "json", "hashlib-small"):
        b = _cell("py-gil", wl, "serial", 1, 0.4)
        cells.append(b)
        for w in (2, 4):
            cells.append(_cell("py-gil", wl, "threads", w, 0.4 / w if wl in ("sleep", "socket") else 0.38, b))
    hb = _cell("py-gil", HOSTILE, "serial", 1, 0.2)
    cells += [hb, _cell("py-gil", HOSTILE, "threads", 2, 0.11, hb)]
    cells.append(_failed("py-gil", "cpu-python", "interpreters", 2, "unsupported",
                         "no concurrent.interpreters " + HOSTILE))
    cells.append(_failed("py-free", "zlib", "threads", 2, "error", "boom " + HOSTILE_IMG))
    doc["cells"] = cells
    convoy = []
    for pin in (True, False):
        for k in (0, 1, 2):
            med = 30e-6 if k == 0 else (0.004 * k if pin else 40e-6)
            convoy.append({"burner": "threads", "cpu_threads": k, "median_s": med, "p99_s": med * 3 + 1e-4,
                           "max_s": med * 5, "pinned": pin, "round_trips": 60, "switch_interval_s": 0.005,
                           "interpreter": "py-gil",
                           "config": {"pin": pin, "cpu_threads": k, "burner": "threads", "round_trips": 60}})
    convoy.append({"burner": "processes", "cpu_threads": 1, "median_s": 35e-6, "p99_s": 2e-3, "max_s": 3e-3,
                   "pinned": True, "round_trips": 60, "switch_interval_s": 0.005, "interpreter": "py-gil",
                   "config": {"pin": True, "cpu_threads": 1, "burner": "processes", "round_trips": 60}})
    for si in (0.001, 0.02):
        convoy.append({"burner": "threads", "cpu_threads": 1, "median_s": si, "p99_s": si * 2,
                       "max_s": si * 3, "pinned": True, "round_trips": 60, "switch_interval_s": si,
                       "interpreter": "py-gil", "config": {"pin": True, "cpu_threads": 1, "burner": "threads",
                                                           "round_trips": 60, "switch_interval": si}})
    convoy.append({"error": "the echo server went away " + HOSTILE, "interpreter": HOSTILE,
                   "config": {"pin": True, "cpu_threads": 1, "burner": "threads"}})
    gil = []
    for call in GILCHECK_CALLS:
        holds = call["workload"] in ("hashlib-small", "zlib", "json", "regex")
        gil.append({"label": call["label"], "workload": call["workload"], "lib": call["lib"], "holds": holds,
                    "ticker_share": 0.4 if holds else 0.9, "call_s": 1e-4, "calls": 100, "cores": 4,
                    "longest_stall_s": 0.01, "method": "ticker share (threshold 0.70)",
                    "interpreter": "py-gil"})
    for label in (HOSTILE, TRICKY):
        gil.append({"label": label, "workload": "x", "lib": HOSTILE, "holds": True, "ticker_share": 0.3,
                    "interpreter": "py-gil", "method": "ticker share (threshold 0.70)"})
    doc["experiments"] = {"convoy": convoy, "gilcheck": gil, "cores": 4}
    doc["claims"] = _judge(doc)
    # a user edited one claim's text and added one of their own
    doc["claims"][0]["claim"] += " " + HOSTILE
    doc["claims"].append({"id": "X9", "claim": HOSTILE, "verdict": HOSTILE_IMG, "summary": TRICKY,
                          "evidence": {"note": HOSTILE}})
    return doc


def write(tmp_path, name, doc):
    """``doc`` (a model document or its raw JSON) as a results file."""
    p = tmp_path / name
    p.write_text(json.dumps(doc.to_json() if isinstance(doc, ResultsDocument) else doc),
                 encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def full_json():
    return full_raw()


@pytest.fixture(scope="module")
def full_doc(full_json):
    return ResultsDocument.from_json(full_json)


@pytest.fixture(scope="module")
def full_page(full_doc, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    src = write(d, "full.json", full_doc)
    out = d / "report.html"
    html.write_report([results.load(src)], str(out), sources=[str(src)])
    return out, out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real, tiny `threadwise bench` with --output and --html (the bench hook of this module)."""
    import subprocess
    import sys
    d = tmp_path_factory.mktemp("real")
    res, page = d / "bench.json", d / "bench.html"
    p = subprocess.run([sys.executable, "-m", "threadwise", "bench", "-w", "cpu-python,sleep", "-b",
                        "threads,processes", "--workers", "1,2", "--repeats", "3", "--warmups", "0",
                        "--task-ms", "5", "-o", str(res), "--html", str(page)],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    return res, page


# --------------------------------------------------------------------------
# the page's content
# --------------------------------------------------------------------------
def test_page_has_every_section_and_figure(full_page, full_doc):
    _, page = full_page
    for section in ("claims", "scaling", "interpreters", "convoy", "gilcheck", "problems", "warnings",
                    "environment", "cells"):
        assert 'id="%s"' % section in page, section
    view = html.build([full_doc])
    # a plot per (interpreter, workload) with a parallel cell, + comparison, convoy, gilcheck
    groups = {(c.interpreter, c.label, c.tag) for c in full_doc.cells
              if c.ok and c.backend != "serial"}
    assert len(view.scaling) == len(groups)
    assert len(view.figures) == len(groups) + 3
    assert all(f.svg and not f.error for f in view.figures)
    assert page.count("<svg") == len(view.figures)
    # the claims table lists every claim, each with a verdict badge
    for v in full_doc.claims:
        assert 'data-claim="%s"' % escape(v.id) in page
    table = page[page.index('id="verdicts"'):page.index("</table>", page.index('id="verdicts"'))]
    assert table.count('class="badge v-') == len(full_doc.claims)
    assert 'class="badge v-unknown"' in table            # the user's made-up verdict


def test_page_is_self_contained_and_scriptless(full_page):
    _, page = full_page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page.replace("&#39;", "'")
    assert not re.search(r"<\s*script", page, re.I)
    assert not re.search(r"<\s*(link|iframe|object|embed|img)\b", page, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "@import" not in page and "url(http" not in page
    assert re.search(r"\son[a-z]+\s*=", re.sub(r">[^<]*<", "><", page)) is None  # no event handler attrs


def test_hostile_labels_render_as_text(full_page):
    _, page = full_page
    esc = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert esc in page
    # in every kind of place: the facts table, a plot's title/legend/ticks, warnings, problems
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    # the hostile interpreter and workload names, in titles, legends and tick labels
    assert sum(esc in s for s in svgs) >= 3, "the hostile names are in too few figures"
    # "$" is not parsed as mathtext, and a label that looks like an id attribute is
    # not rewritten by the id prefixing (matplotlib leaves quotes as they are in text)
    assert any('>$x$ "q" &amp; --&gt; id="a" url(#b)</text>' in s for s in svgs)


def test_every_id_in_the_page_is_unique(full_page):
    _, page = full_page
    tags = re.sub(r">[^<]*<", "><", page)            # markup only, no text
    ids = re.findall(r'\sid="([^"]+)"', tags)
    dup = {i for i in ids if ids.count(i) > 1}
    assert not dup
    for ref in set(re.findall(r'(?:href="#|url\(#)([^")]+)', tags)):
        assert ref in ids, ref


def test_nothing_to_show_for_an_empty_but_valid_file(tmp_path, run_cli):
    src = write(tmp_path, "empty.json", {"schema": results.SCHEMA, "cells": []})
    out = tmp_path / "empty.html"
    p = run_cli("report", str(src), "-o", str(out))
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    assert "Nothing to show" in page and "empty.json" in page
    assert "<svg" not in page


@pytest.mark.parametrize("name,content,what", [
    ("other.json", json.dumps({"schema": "threadwise.results/99", "cells": []}), "has schema"),
    ("truncated.json", json.dumps({"schema": results.SCHEMA, "cells": []})[:25], "not valid JSON"),
    ("blank.json", "", "is empty"),
    ("foreign.json", json.dumps([1, 2, 3]), "not a threadwise results file"),
])
def test_bad_results_files_are_named_with_what_is_wrong(tmp_path, run_cli, name, content, what):
    src = tmp_path / name
    src.write_text(content)
    good = write(tmp_path, "good.json", {"schema": results.SCHEMA, "cells": []})
    out = tmp_path / "r.html"
    p = run_cli("report", str(good), str(src), "-o", str(out))
    assert p.returncode == 2
    err = " ".join(p.stderr.split())
    assert name in err and what in err and "Fix:" in err, err
    assert "Traceback" not in p.stderr
    assert not out.exists()


def test_missing_file_and_unwritable_output(tmp_path, run_cli):
    p = run_cli("report", str(tmp_path / "nope.json"), "-o", str(tmp_path / "r.html"))
    assert p.returncode == 2 and "nope.json does not exist" in " ".join(p.stderr.split())
    src = write(tmp_path, "e.json", {"schema": results.SCHEMA, "cells": []})
    p = run_cli("report", str(src), "-o", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    err = " ".join(p.stderr.split())
    assert p.returncode == 2 and "can't write the HTML report" in err and "does not exist" in err
    assert "Traceback" not in p.stderr
    with pytest.raises(ThreadwiseError):
        html.write_report([results.load(src)], str(tmp_path))      # a directory


#: hand edits of the wrong type: the model refuses each, naming the field
HAND_EDITS = [
    (lambda d: d["cells"][1].update(speedup="fast"), "cells[1].speedup"),
    (lambda d: d["cells"][2].update(wall_s="x"), "cells[2].wall_s"),
    (lambda d: d["cells"][3].update(speedup_ci95=[None, "y"]), "cells[3].speedup_ci95[0]"),
    (lambda d: d["cells"][4].update(workers="two"), "cells[4].workers"),
    (lambda d: d["cells"][5]["wall_s"]["samples"].append(float("nan")), "cells[5].wall_s.samples[5]"),
    (lambda d: d["experiments"]["gilcheck"][0].update(ticker_share="lots"),
     "experiments.gilcheck[0].ticker_share"),
    (lambda d: d["environment"].update(load_avg=["a", None]), "environment.load_avg[0]"),
    (lambda d: d["interpreters"].update({"py-gil": "not a dict"}), "interpreters.py-gil"),
    (lambda d: d["claims"].append("not a dict"), "claims["),
]


@pytest.mark.parametrize("edit,field", HAND_EDITS, ids=[f for _, f in HAND_EDITS])
def test_hand_edited_fields_are_refused_by_name(full_json, edit, field):
    doc = copy.deepcopy(full_json)
    edit(doc)
    with pytest.raises(ResultsFileError) as e:
        results.loads(json.dumps(doc), "edited.json")
    msg = str(e.value)
    assert "edited.json" in msg and field in msg and "Fix:" in msg, msg


def test_a_hand_edited_file_fails_the_report_command_without_a_traceback(tmp_path, full_json,
                                                                        run_cli):
    doc = copy.deepcopy(full_json)
    doc["cells"][1]["speedup"] = "fast"
    src, out = write(tmp_path, "edited.json", doc), tmp_path / "r.html"
    p = run_cli("report", str(src), "-o", str(out))
    err = " ".join(p.stderr.split())
    assert p.returncode == 2 and "edited.json" in err and "speedup" in err and "Fix:" in err, err
    assert "Traceback" not in p.stderr and not out.exists()


def test_odd_but_valid_numbers_do_not_break_the_page(full_json):
    doc = copy.deepcopy(full_json)
    doc["cells"][1]["speedup"] = 1e308                     # huge, but a finite number
    doc["cells"][1]["speedup_ci95"] = [1e300, 1e308]
    doc["cells"][2]["speedup"] = 0.0
    doc["cells"][3]["speedup_ci95"] = [3.0, 1.0]            # low above high
    doc["cells"][3]["parallelism"] = -1.0
    doc["cells"][4]["speedup"] = None                        # ok, but no speedup: left out of plots
    doc["cells"][0]["wall_s"] = stats.summarize([0.0]).to_json()
    doc["experiments"]["convoy"][0]["median_s"] = None       # a run that recorded no numbers
    doc["experiments"]["gilcheck"][0]["ticker_share"] = None
    doc["environment"]["load_avg"] = []
    del doc["interpreters"]["py-gil"]                        # cells of an undescribed interpreter
    doc["claims"].append({"id": "", "claim": "", "verdict": "", "summary": ""})
    view = html.build([ResultsDocument.from_json(doc)])
    page = html.render([ResultsDocument.from_json(doc)])
    assert "<svg" in page and "Claims and verdicts" in page
    assert any("no median_s/p99_s" in p.message for p in view.problems)
    assert any("no ticker_share" in p.message for p in view.problems)
    assert next(r for r in view.interp.rows if r.label == "py-gil").implementation == "?"


def test_several_files_merge_and_keep_their_environments(tmp_path, full_doc, run_cli):
    a = full_doc
    b = results.new_document(dict(full_doc.environment.to_json(), hostname="other-host"), {}).to_json()
    base = _cell("py-other", "cpu-python", "serial", 1, 0.3)
    b["cells"] = [base, _cell("py-other", "cpu-python", "threads", 2, 0.16, base)]
    b["interpreters"] = {"py-other": _interp_facts("py-other", "PyPy", "7.3", True, False)}
    pa, pb = write(tmp_path, "a.json", a), write(tmp_path, "b.json", b)
    out = tmp_path / "ab.html"
    p = run_cli("report", str(pa), str(pb), "-o", str(out))
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    assert "py-other \u00b7 cpu-python" in page and "py-gil \u00b7 cpu-python" in page
    assert "other-host" in page and "a.json" in page and "b.json" in page
    assert 'data-claim="C8"' in page                      # claims of the first file survive the merge


def test_real_bench_run_with_html_flag_and_report_command(real_run, tmp_path, run_cli):
    res, page_path = real_run
    page = page_path.read_text()
    assert page.count("<svg") >= 3                       # cpu-python, sleep, the comparison
    doc = results.load(res)
    for c in doc.cells:
        assert c.interpreter in page
    out = tmp_path / "again.html"
    p = run_cli("report", str(res), "-o", str(out))
    assert p.returncode == 0 and "HTML report written to" in p.stderr
    assert out.read_text().count("<svg") == page.count("<svg")


def test_inline_svg_prefixes_ids_and_refuses_active_content():
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg width="10pt" height="5pt" viewBox="0 0 10 5">'
           '<metadata>x</metadata><defs><path id="m1"/></defs><use xlink:href="#m1" clip-path="url(#c)"/>'
           '<text>id="m1" url(#m1)</text></svg>')
    out = plots.inline_svg(svg, "p-", "t<")
    assert out.startswith("<svg") and "<metadata>" not in out and "<?xml" not in out
    assert 'id="p-m1"' in out and 'href="#p-m1"' in out and "url(#p-c)" in out
    assert '<text>id="m1" url(#m1)</text>' in out         # text is not rewritten
    assert 'aria-label="t&lt;"' in out and 'width="10pt"' not in out
    with pytest.raises(plots.UnsafeSVGError):
        plots.inline_svg('<svg viewBox="0 0 1 1"><script>alert(1)</script></svg>', "p-")
    with pytest.raises(plots.UnsafeSVGError):
        plots.inline_svg('<svg viewBox="0 0 1 1"><foreignObject/></svg>', "p-")


def test_same_results_give_the_same_page(full_doc):
    assert html.render([full_doc]) == html.render([full_doc])


# --------------------------------------------------------------------------
# in a real browser
# --------------------------------------------------------------------------
def _browser_or_skip():
    how = "install it: scripts/install-browser (apt-get install -y chromium; pip install playwright)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip("no Chromium at %s; %s" % (CHROMIUM, how))
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed; " + how)
    return sync_playwright


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

_ALERT_TRAP = """
window.__fired = [];
for (const name of ["alert", "confirm", "prompt", "print"]) {
  window[name] = (...a) => { window.__fired.push(name + ":" + a.join(",")); };
}
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_playwright = _browser_or_skip()
    with sync_playwright() as pw:
        # launch() gives the browser a fresh, temporary profile (user-data-dir) of its own
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _open(browser, path, width):
    ctx = browser.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1,
                              java_script_enabled=True)
    page = ctx.new_page()
    seen = {"console": [], "errors": [], "dialogs": [], "requests": []}
    page.on("console", lambda m: seen["console"].append("%s: %s" % (m.type, m.text))
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: seen["requests"].append(r.url)
            if not r.url.startswith(("file:", "data:")) else None)
    page.add_init_script(_ALERT_TRAP)
    page.goto(Path(path).resolve().as_uri(), wait_until="load")
    return ctx, page, seen


@pytest.mark.parametrize("width,name", [(1280, "desktop"), (390, "phone")])
def test_in_chromium(browser, full_page, full_doc, width, name):
    path, _ = full_page
    ctx, page, seen = _open(browser, path, width)
    try:
        figures = page.locator("figure svg")
        n = figures.count()
        assert n == len(html.build([full_doc]).figures) and n >= 10
        for i in range(n):
            svg = figures.nth(i)
            box = svg.bounding_box()
            assert box and box["width"] > 150 and box["height"] > 100, (i, box)
            assert svg.locator("path").count() > 10, i         # drawn, not an empty frame
            assert len(svg.locator("text").all_text_contents()) > 3
        # the verdict table lists every claim, with its verdict
        rows = page.locator("#verdicts tbody tr")
        ids = [rows.nth(i).locator("td").first.inner_text().strip() for i in range(rows.count())]
        assert ids == [v.id for v in full_doc.claims]
        for i in range(rows.count()):
            assert rows.nth(i).locator(".badge").is_visible()
        # hostile labels are text, in HTML and in SVG, and nothing ran
        assert page.get_by_text(HOSTILE, exact=False).count() > 3
        assert page.locator("svg text", has_text=HOSTILE).count() > 0
        assert page.evaluate("document.scripts.length") == 0
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        assert page.evaluate("window.__fired") == []
        assert seen["dialogs"] == [] and seen["errors"] == []
        assert seen["console"] == [], seen["console"]
        assert seen["requests"] == [], seen["requests"]
        # phone width: the page itself does not scroll sideways (wide tables scroll in their box)
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / ("report-%s.png" % name)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20000
    finally:
        ctx.close()


def test_in_chromium_empty_and_real(browser, real_run, tmp_path):
    src = write(tmp_path, "empty.json", {"schema": results.SCHEMA, "cells": []})
    out = tmp_path / "empty.html"
    html.write_report([results.load(src)], str(out), sources=[str(src)])
    for path, name in ((out, "empty"), (real_run[1], "real-bench")):
        ctx, page, seen = _open(browser, path, 1280)
        try:
            if name == "empty":
                assert page.locator("#nothing").is_visible()
                assert page.locator("svg").count() == 0
            else:
                assert page.locator("figure svg").count() >= 3
            assert seen["console"] == [] and seen["errors"] == [] and seen["requests"] == []
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / ("report-%s.png" % name)), full_page=True)
        finally:
            ctx.close()
