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


def require_report_extra() -> None:
    """Fail fast (exit 2) when the plotting stack of ``threadwise[report]`` is missing."""
    import importlib.util

    from ..errors import UsageError
    missing = [m for m in ("matplotlib", "jinja2") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError("the HTML report needs %s, which this install of threadwise leaves out"
                         % " and ".join(missing),
                         "threadwise was installed without its 'report' extra (the light install)",
                         "pip install 'threadwise[report]' (or bash scripts/setup, which installs it)")
