"""Views of a results file beyond the terminal: the HTML report and the pyperf export.

    results files ──► results.load: ResultsDocument (typed, validated; a bad file is a
        │             ResultsFileError naming it) ──► model.merge
        ├──► html.build -> Page (view model) -> templates/report.html.j2: one
        │    self-contained page; figures from plots.py
        └──► export.to_pyperf:  pyperf's JSON (BenchmarkSuite format 1.0)

``cli.py`` plugs the ``report`` and ``export`` subcommands into threadwise's
command line; ``bench --html`` and ``claims --html`` call ``html.write_report``.
The modules import matplotlib and Jinja2 only when used, so ``import
threadwise.report`` stays cheap.
"""
from __future__ import annotations

__all__ = ["html", "plots", "export", "cli"]
