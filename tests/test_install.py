"""A light install: the base package without the plotting stack, as `pip install threadwise`
gives it.  Slow-ish (a real venv and pip install), so it runs once."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _size_mb(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total / 2 ** 20


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("light") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    base = _size_mb(venv)
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True,
                       text=True, timeout=600)
    if p.returncode != 0:
        pytest.skip("pip install failed here (no package index?): %s" % p.stderr[-500:])
    return venv, base


def test_light_install_is_small_and_has_no_plotting_stack(light_venv):
    venv, base = light_venv
    added = _size_mb(venv) - base
    py = venv / "bin" / "python"
    found = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in "
                            "('matplotlib', 'numpy', 'PIL', 'jinja2') if u.find_spec(m)])"],
                           capture_output=True, text=True)
    assert found.stdout.strip() == "[]", found.stdout
    print("the base install added %.1f MB" % added)
    assert added < 60, "the base install added %.1f MB" % added


def test_light_install_runs_and_report_asks_for_the_extra(light_venv, tmp_path):
    venv, _ = light_venv
    tw = venv / "bin" / "threadwise"
    out = tmp_path / "r.json"
    p = subprocess.run([str(tw), "bench", "-w", "sleep", "-b", "threads", "--workers", "2",
                        "--repeats", "2", "--warmups", "0", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["cells"]
    p = subprocess.run([str(tw), "report", str(out), "-o", str(tmp_path / "r.html")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "threadwise[report]" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "r.html").exists()
    p = subprocess.run([str(tw), "bench", "-w", "sleep", "--html", str(tmp_path / "b.html")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "threadwise[report]" in p.stderr   # refused before measuring
