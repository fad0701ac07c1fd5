"""Take the README's screenshot of a `pfs review` patient page with headless Chromium.

    python docs/review_screenshot.py OUT PATIENT_ID docs/review-patient.png

OUT is a `pfs extract` output directory (the README's came from `pfs demo`'s 12-patient run). A
throw-away review database is used, so no decision is recorded.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path


def main(out: str, patient_id: str, png: str) -> None:
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from pfs.review.app import create_app
    from pfs.review.server import build_state

    with tempfile.TemporaryDirectory() as tmp:
        state = build_state(out, db_path=Path(tmp) / "review.sqlite", reviewer="demo")
        srv = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=8799, log_level="warning"))
        threading.Thread(target=srv.run, daemon=True).start()
        while not srv.started:
            time.sleep(0.05)
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or ""
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1300",
                    "--hide-scrollbars"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                                  options=opts)
        try:
            driver.get(f"http://127.0.0.1:8799/patients/{patient_id}")
            raw = driver.get_screenshot_as_png()
        finally:
            driver.quit()
            srv.should_exit = True
    _small_png(raw, Path(png))


def _small_png(raw: bytes, path: Path) -> None:
    """A 256-colour PNG: the page is flat colours and text, so this keeps it sharp at a fraction of the size."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
        path, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
