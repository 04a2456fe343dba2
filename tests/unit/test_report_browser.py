"""The run report as a browser shows it: headless Chromium, with every host name unresolvable,
renders the demo run's report; its DOM holds the plots as SVG and its screenshot shows them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from jobs.html_report import write_report
from jobs.report_plots import KEPT
from jobs.store import Store
from tests.support.inspect_stores import run_without_ray, write_config
from tests.support.html_page import Page

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (.ci/run installs it: "
                                "apt-get install chromium)")


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # offline: any host name fails to resolve, so a page that loaded something would miss it
    flags = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}", "--no-first-run"]
    return subprocess.run(flags + list(args), capture_output=True, text=True, timeout=180, check=True)


def test_the_report_renders_offline(tmp_path: Path) -> None:
    from PIL import Image

    uri = str(tmp_path / "store")
    run_without_ray(write_config(tmp_path, "demo.yaml", uri), "demo")
    report = Path(write_report(Store(uri), "demo", str(tmp_path / "report.html")))
    written = Page(report.read_text())

    dom = Page(_chromium(tmp_path / "profile", "--dump-dom", report.as_uri()).stdout)
    assert dom.tags["svg"] == written.tags["svg"] >= 12  # funnel, reasons, sources, 8 signals, clusters
    assert dom.tags["path"] > 100 and dom.tags["text"] > 100  # drawn shapes and labels, as text
    assert sorted(v for v in dom.values("data-column")) == sorted(written.values("data-column"))
    assert "quality_word_count" in "".join(dom.text)

    shot = tmp_path / "shot.png"
    _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars",
              report.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    white = int((pixels == 255).all(axis=1).sum())
    assert white < 0.9 * len(pixels), "the screenshot is (nearly) blank"
    bar = [int(KEPT[i:i + 2], 16) for i in (1, 3, 5)]
    assert int((pixels == bar).all(axis=1).sum()) > 2000, "no bar of the plots' colour is drawn"
