"""The page of `ferflow serve` in a real browser (Debian's chromium, driven by Playwright).

Chromium's fake camera plays a Y4M video of two real faces; the page must box and label
them, show the probabilities the API gives for that very frame, and say so clearly when the
camera is refused or the server goes away. A screenshot is kept (its path is printed); set
FERFLOW_SCREENSHOT=docs/images/serve.png to refresh the one in the docs.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
from pathlib import Path

import cv2
import httpx2 as httpx
import numpy as np
import pytest
from helpers import CHROMIUM_ARGS, ServerProcess, camera_frame, chromium

pytestmark = pytest.mark.slow

WAIT_MS = 30_000

SHOWN = """async () => {
  const analysed = window.ferflow.analysedFrame();  // the frame on screen, taken first
  const faces = [...document.querySelectorAll(".face")].map((card) => ({
    face: Number(card.dataset.face),
    title: card.querySelector("h2").textContent,
    bars: Object.fromEntries([...card.querySelectorAll(".bar")].map((bar) => [
      bar.dataset.label, [Number(bar.dataset.value), bar.querySelector(".pct").textContent],
    ])),
  }));
  const boxes = [...document.querySelectorAll(".box")].map((box) => box.textContent);
  return { frame: document.body.dataset.frame, faces, boxes, analysed: await analysed };
}"""


def write_y4m(path: Path, frame: np.ndarray, frames: int = 2) -> Path:
    """An uncompressed Y4M video (what Chromium's fake camera plays) of one still frame."""
    height, width = frame.shape[:2]
    planes = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + planes)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory, astronaut_bgr):
    from playwright.sync_api import sync_playwright

    camera = write_y4m(tmp_path_factory.mktemp("camera") / "faces.y4m", camera_frame(astronaut_bgr))
    with sync_playwright() as playwright:
        # No --use-fake-ui-for-media-stream: each test's context grants the camera or not,
        # as a person would.
        browser = playwright.chromium.launch(
            executable_path=chromium(),
            args=[
                *CHROMIUM_ARGS,
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}",
            ],
        )
        yield browser
        browser.close()


def open_page(browser, url: str, *, camera: bool):
    context = browser.new_context(
        viewport={"width": 1200, "height": 700}, permissions=["camera"] if camera else []
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    return page


def percent(p: float) -> str:
    return f"{100 * p:.1f}%"


def test_camera_faces_are_boxed_labelled_and_match_the_api(browser, shipped_model_server, tmp_path):
    from playwright.sync_api import expect

    page = open_page(browser, shipped_model_server.url, camera=True)
    page.wait_for_selector("#status[data-state=live]")
    # Locator waits, not wait_for_function: the page's Content-Security-Policy forbids the
    # eval that wait_for_function's string predicates need.
    expect(page.locator(".box")).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator(".face .bar")).to_have_count(14, timeout=WAIT_MS)
    expect(page.locator("#fps")).to_have_text(re.compile(r"[0-9.]+ frames/s"), timeout=WAIT_MS)

    shown = page.evaluate(SHOWN)
    screenshot = tmp_path / "serve.png"
    page.screenshot(path=screenshot)
    print(f"screenshot: {screenshot}")
    if os.environ.get("FERFLOW_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["FERFLOW_SCREENSHOT"])

    # The exact frame the page analysed, sent to the API as a photo.
    assert shown["frame"] == str(shown["analysed"]["frame"])
    jpeg = base64.b64decode(shown["analysed"]["jpeg"])
    response = httpx.post(
        shipped_model_server.url + "/api/predict", files={"image": ("frame.jpg", jpeg)}
    )
    records = response.json()["records"]
    assert [r["faces"] for r in records] == [2, 2]
    assert len(shown["faces"]) == 2
    for record, card, box in zip(records, shown["faces"], shown["boxes"], strict=True):
        assert card["face"] == record["face"]
        assert card["title"] == f"Face {record['face'] + 1}: {record['label']}"
        assert box == f"{record['face'] + 1}: {record['label']} {round(100 * record['score'])}%"
        assert set(card["bars"]) == set(record["probabilities"])
        for label, p in record["probabilities"].items():
            value, text = card["bars"][label]
            assert value == pytest.approx(p, abs=1e-4)  # same frame, so same numbers
            assert text == percent(value)
    assert page.locator("#model").inner_text().startswith("ferflow-vgg-fer2013: ")


def test_a_refused_camera_says_so(browser, shipped_model_server):
    page = open_page(browser, shipped_model_server.url, camera=False)

    status = page.locator("#status[data-state=denied]")
    status.wait_for()
    assert "Camera permission denied" in status.inner_text()
    assert page.locator(".box").count() == 0


def test_a_dropped_photo_is_analysed(browser, shipped_model_server, astronaut_bgr):
    photo = cv2.imencode(".png", astronaut_bgr)[1].tobytes()
    page = open_page(browser, shipped_model_server.url, camera=False)
    page.locator("#status[data-state=denied]").wait_for()  # no camera: photos still work

    transfer = page.evaluate_handle(
        """(b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], "astronaut.png", { type: "image/png" }));
          return transfer;
        }""",
        base64.b64encode(photo).decode(),
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})

    page.locator("#status[data-state=photo]").wait_for()
    assert page.locator("#status").inner_text() == "astronaut.png: 1 face found."
    assert page.locator("#photo").is_visible()
    expected = httpx.post(
        shipped_model_server.url + "/api/predict", files={"image": ("astronaut.png", photo)}
    ).json()["records"][0]
    box = page.locator(".box")
    assert box.inner_text() == f"1: {expected['label']} {round(100 * expected['score'])}%"
    for label, p in expected["probabilities"].items():
        bar = page.locator(f".face .bar[data-label={label}]")
        assert bar.locator(".pct").inner_text() == percent(p)


def test_a_stopped_server_is_shown_as_unreachable(browser, app_model_dir):
    server = ServerProcess("--model-dir", str(app_model_dir))
    try:
        page = open_page(browser, server.url, camera=True)
        page.locator("#status[data-state=live]").wait_for()
    finally:
        code = server.stop()  # SIGTERM, as Ctrl-C or a service manager stops it

    page.locator("#status[data-state=unreachable]").wait_for()
    assert "Server unreachable" in page.locator("#status").inner_text()
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has stopped
    assert "Traceback" not in "".join(server.log)


def test_a_stream_over_the_cap_shows_why(browser, app_model_dir):
    server = ServerProcess("--model-dir", str(app_model_dir), "--max-streams", "1")
    try:
        first = open_page(browser, server.url, camera=True)
        first.locator("#status[data-state=live]").wait_for()
        second = open_page(browser, server.url, camera=True)
        second.locator("#status[data-state=busy]").wait_for()
        said = second.locator("#status").inner_text()
    finally:
        server.stop()
    assert "server busy: it serves at most 1 camera streams at once" in said
