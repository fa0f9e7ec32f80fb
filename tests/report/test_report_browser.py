"""The report opens in headless Chromium without a single network request, checked by the browser's own
network log, and renders (a screenshot with figures in it). Skips, saying so, where Chromium is absent
(Debian: `apt-get install chromium`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import invoke_cli
from tests.report.run_files import report_args, write_run

pytest.importorskip("matplotlib", reason="clipdpo report needs the 'report' extra (matplotlib)")

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (apt-get install chromium): the report was not opened"
)

# Everything that makes Chromium itself go online is off, and every host name resolves to nothing, so a
# page request can only fail; the network log still records it.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def open_in_chromium(page: Path, screenshot: Path, size: str = "1200,2400") -> list[str]:
    """Screenshot `page`; the URLs of the requests the page made (Chromium's own are not counted)."""
    net = screenshot.with_suffix(".netlog.json")
    with tempfile.TemporaryDirectory() as profile:
        args = [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--log-net-log={net}",
            f"--screenshot={screenshot}",
            f"--window-size={size}",
            page.resolve().as_uri(),
        ]
        done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads(net.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requests = []
    for event in log["events"]:
        params = event.get("params") or {}
        # a request made for a page opened from a file carries the file:// origin in its isolation key
        if event["type"] == start_job and str(params.get("network_isolation_key", "")).startswith("file://"):
            requests.append(params.get("url", ""))
    return requests


def distinct_colors(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as img:
        return len(img.convert("RGB").getcolors(maxcolors=1 << 20) or ())


def test_the_check_sees_a_page_that_goes_online(tmp_path: Path):
    page = tmp_path / "online.html"
    page.write_text('<html><body><img src="https://example.com/x.png"><p>hello</p></body></html>')
    assert open_in_chromium(page, tmp_path / "online.png", "400,300") == ["https://example.com/x.png"]


def test_report_opens_offline_and_renders(tmp_path: Path):
    run = write_run(tmp_path / "run")
    page = tmp_path / "report.html"
    result = invoke_cli(
        "report",
        *report_args(run, compare=False),
        "-o",
        str(page),
        "-q",
    )
    assert result.exit_code == 0, result.output
    shot = Path(os.environ.get("CLIPDPO_REPORT_SCREENSHOT", tmp_path / "report.png"))
    assert open_in_chromium(page, shot, "1200,5600") == []
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1200, 5600)
        top = img.convert("RGB").crop((0, 0, 1200, 90))
    assert top.getpixel((10, 10)) == (29, 35, 39)  # the header band (#1d2327) is drawn
    assert distinct_colors(shot) > 500  # figures and thumbnails, not a blank or error page
