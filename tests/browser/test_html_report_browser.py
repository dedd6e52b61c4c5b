"""The HTML report in a real headless browser (Chromium from the distribution's packages).

How the checks work, and why this way:

- ``--dump-dom`` prints the DOM after the load event (``--virtual-time-budget`` lets the
  page settle first). The page's own inline script sets ``data-images-decoded="yes"`` on
  <body> at load only when every <img> has decoded (naturalWidth > 0), and
  ``data-image-count``; the test reads both from the dumped DOM.
- Console: with ``--enable-logging=stderr --v=0`` Chromium writes every console message of
  the page (errors, uncaught exceptions, Content-Security-Policy violations, also plain
  ``console.log``) to stderr as ``...:CONSOLE...`` lines. The report never writes to the
  console, so any such line is a failure. This needs no chromedriver or DevTools client.
- A negative control (a page with a broken image, a blocked remote image and a script
  error) shows both checks can fail.

Skipped with the reason when no Chromium is installed; with the environment variable CI set
(``.ci/run`` sets it and installs Debian's chromium) a missing browser FAILS instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from refusal_checks.reports.html.page import write_html
from tests.unit.test_html_report import claim_ids, realistic_payload

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000")


@pytest.fixture(scope="module")
def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    message = (f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH); "
               "install Debian's chromium: apt-get install --no-install-recommends chromium")
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the browser check must run: {message}")
    pytest.skip(message)


def open_page(browser: str, page: Path, profile: Path) -> tuple[str, list[str]]:
    """(dumped DOM, console lines) of ``page`` in a fresh profile."""
    done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                           page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def body_attribute(dom: str, name: str) -> str | None:
    body = re.search(r"<body\b[^>]*>", dom)
    assert body, dom[:500]
    found = re.search(rf'\b{name}="([^"]*)"', body.group(0))
    return found.group(1) if found else None


def test_report_renders_every_claim_with_decoded_figures_and_a_silent_console(
        browser: str, tmp_path: Path) -> None:
    # One model: side-by-side columns are checked in tests/unit/test_html_report.py.
    models = ("qwen-coder-0.5b",)
    page = write_html(realistic_payload(models), tmp_path / "report.html")
    source = page.read_text()

    dom, console = open_page(browser, page, tmp_path / "profile")

    assert console == [], "\n".join(console)
    expected_images = source.count("<img ")
    assert expected_images >= 6
    assert body_attribute(dom, "data-image-count") == str(expected_images)
    assert body_attribute(dom, "data-images-decoded") == "yes"
    for claim in claim_ids():
        assert f'id="claim-{claim}"' in dom, claim
    for model in models:
        assert f"<th>{model}</th>" in dom
        # The cross-ablation heatmaps (the paper's directions, and the genre-matched ones
        # that decide the claim) are among the decoded images.
        assert f'alt="cross-ablation drops, {model}, paper' in dom
        assert f'alt="cross-ablation drops, {model}, genre-matched directions"' in dom


def test_the_checks_catch_a_broken_page(browser: str, tmp_path: Path) -> None:
    page = write_html(realistic_payload(claims=["distinct-directions"]), tmp_path / "bad.html")
    broken = page.read_text().replace(
        "<script>", '<img alt="broken" src="data:image/png;base64,AAAA">'
        '<img alt="remote" src="https://example.invalid/x.png">'
        "<script>undefinedFunction();</script><script>", 1)
    page.write_text(broken)

    dom, console = open_page(browser, page, tmp_path / "profile")

    assert body_attribute(dom, "data-images-decoded") == "no"
    assert any("Uncaught ReferenceError" in line for line in console), console
    assert any("Content Security Policy" in line for line in console), console
