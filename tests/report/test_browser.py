"""The HTML report in a real browser: headless Chromium loads it, every figure decodes
(``naturalWidth > 0``) and the console stays clean. Chromium is required (CI installs it):
without it this test fails and says how to install it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from probekit.report import build_report

CHROMIUM = os.environ.get("PROBEKIT_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]

#: Injected at the top of a *test copy* of the page: records page errors (including failed
#: resource loads, captured) and console.error calls, and after load writes how many images
#: decoded into the DOM, which --dump-dom then prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error:' + (e.message || (e.target && e.target.src || '').slice(0, 40))), true);
const _ce = console.error; console.error = (...a) => { window.__errors.push('console:' + a.join(' ')); _ce(...a); };
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const pre = document.createElement('pre'); pre.id = 'probe-result';
  pre.textContent = `IMAGES ${imgs.length} DECODED ${ok} ERRORS ${window.__errors.length} ${window.__errors.join('|')}`;
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(f"headless Chromium is needed for the report's browser test and {CHROMIUM} is "
                    "missing: install it with `sudo apt-get install -y chromium` (Debian/Ubuntu; "
                    ".ci/run does this) or point PROBEKIT_CHROMIUM at a Chromium/Chrome binary")
    return CHROMIUM


def load_in_browser(html: Path, tmp: Path) -> dict:
    """Load a probed copy of ``html``; returns images, decoded, page errors and console errors."""
    page = tmp / "probed.html"
    page.write_text(html.read_text().replace("<head>", "<head>" + PROBE, 1))
    proc = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r"IMAGES (\d+) DECODED (\d+) ERRORS (\d+) ?(.*?)</pre>", proc.stdout, re.S)
    assert m, f"the probe did not run (exit {proc.returncode}): {proc.stderr[-2000:]}"
    # Chromium logs every console message as INFO:CONSOLE without its level; the report has
    # no scripts of its own, so any console line at all is a problem.
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return {"images": int(m[1]), "decoded": int(m[2]), "page_errors": int(m[3]),
            "details": m[4], "console_errors": console}


def test_report_renders_every_figure_without_console_errors(sim_analysis, tmp_path):
    html, _ = build_report(sim_analysis, tmp_path / "report", {"synthetic": True})
    r = load_in_browser(html, tmp_path)
    n = len(list((sim_analysis / "figures").glob("*.png")))
    assert r["images"] == n + 1 and n >= 2  # + the at-a-glance figure
    assert r["decoded"] == n + 1, r
    assert r["page_errors"] == 0 and not r["console_errors"], r
    shot = tmp_path / "report.png"
    subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}",
                    f"--screenshot={shot}", "--window-size=1200,1600", html.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000  # a page, not a blank


def test_the_checks_can_fail(tmp_path):
    """A broken figure and a console error are both caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head></head><body>'
                   '<img src="data:image/png;base64,iVBORw0KGgoAAAAbroken">'
                   '<script>console.error("boom")</script></body></html>')
    r = load_in_browser(bad, tmp_path)
    assert r["images"] == 1 and r["decoded"] == 0
    assert r["page_errors"] >= 2 and "console:boom" in r["details"]
    assert any("boom" in line for line in r["console_errors"])
