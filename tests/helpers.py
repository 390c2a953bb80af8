"""Helpers the tests share that are not fixtures (fixtures live in conftest.py): test
modules import these from here, never from conftest or from one another."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from pipeline.app.image_header import Limits

# ---------------------------------------------------------------------------------------
# Training, evaluation and export: tiny learnable data.
# ---------------------------------------------------------------------------------------

#: Rows per split of the tiny prepared data set.
TINY_SPLIT_SIZES = {"train": 140, "val": 70, "test": 70}


def write_tiny_prepared(root: Path, sizes: dict[str, int] = TINY_SPLIT_SIZES, seed: int = 0):
    """Prepared shards in the `prepare` stage's layout; class k = a bright bar at row 4+6k.

    Learnable in a few epochs by a tiny network, so tests can check real learning.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in sizes.items():
        labels = rng.integers(0, 7, count).astype(np.int64)
        images = rng.integers(0, 60, (count, 48, 48)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 4 + 6 * k : 8 + 6 * k, :] = 220
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "images.npy", images)
        np.save(folder / "labels.npy", labels)
    manifest = {"splits": {split: {"rows": count} for split, count in sizes.items()}}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


# ---------------------------------------------------------------------------------------
# The app: a short video of a moving face; what it must never import.
# ---------------------------------------------------------------------------------------


def write_moving_face_video(
    path: Path, astronaut: np.ndarray, frames: int = 12, fps: float = 15.0
) -> Path:
    """A 320x240 video: the astronaut photo (240 px high) sliding 4 px per frame, right for
    20 frames, then back left, and so on."""
    import cv2

    photo = cv2.resize(astronaut, (240, 240), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (320, 240))
    assert writer.isOpened(), "OpenCV cannot write mp4v videos here"
    for i in range(frames):
        frame = np.full((240, 320, 3), 90, np.uint8)
        x = 4 * abs((i + 20) % 40 - 20)
        frame[:, x : x + 240] = photo
        writer.write(frame)
    writer.release()
    return path


#: Heavy, and in no extra of ferflow: must never come in through a dependency either.
HEAVY = ("jax", "torch")
#: ferflow's own code that the app must not load (it needs the pipeline extra).
OURS_NOT_FOR_THE_APP = (
    "pipeline.data",
    "pipeline.models",
    "pipeline.training",
    "pipeline.evaluation",
    "pipeline.export",
    "pipeline.report",
    "pipeline.params",
)

# ---------------------------------------------------------------------------------------
# `ferflow serve`: camera frames, uploads, the engine in process, the server.
# ---------------------------------------------------------------------------------------


def camera_frame(astronaut: np.ndarray, width: int = 640) -> np.ndarray:
    """A 4:3 frame of two real faces (the astronaut, once mirrored) over a photo of coffee."""
    import cv2
    from skimage import data

    frame = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (640, 480))
    head = astronaut[20:230, 125:325]  # her head, hair and collar
    frame[120:393, 40:300] = cv2.resize(head, (260, 273), interpolation=cv2.INTER_AREA)
    mirrored = cv2.flip(cv2.resize(head, (220, 231), interpolation=cv2.INTER_AREA), 1)
    frame[150:381, 380:600] = mirrored
    if width == 640:
        return frame
    return cv2.resize(frame, (width, width * 3 // 4), interpolation=cv2.INTER_AREA)


class ServerProcess:
    """`ferflow serve` in a subprocess: its URL (from the line it prints once listening) and
    everything it wrote to stderr since. A server that prints no URL within `start_s`
    seconds (hung, or stuck loading) is killed and the test fails with its log."""

    def __init__(self, *args: str, start_s: float = 120.0) -> None:
        import re
        import subprocess
        import sys
        import threading

        from pipeline.config import REPO_ROOT

        command = [sys.executable, "-m", "pipeline.cli", "serve", "--port", "0", *args]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.log: list[str] = []
        self._url_pattern = re.compile(r"http://\S+:\d+")
        self._listening = threading.Event()
        self.url = ""
        # One thread reads stderr from the start, so waiting for the URL line is bounded in
        # time (a blocking readline here could wait forever on a server that hangs).
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._listening.wait(timeout=start_s)
        if not self.url:
            self.process.kill()
            self._reader.join(timeout=5)
            raise AssertionError(
                f"ferflow serve printed no URL within {start_s:g} s:\n" + "".join(self.log)
            )

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            found = None if self.url else self._url_pattern.search(line)
            if found:  # model loading may print first; the URL line means listening
                self.url = found.group(0)
                self._listening.set()
        self._listening.set()  # the process ended (without a URL, if none was seen)

    def stop(self) -> int:
        self.process.terminate()
        try:
            code = self.process.wait(timeout=15)
        except Exception:
            self.process.kill()
            raise
        self._reader.join(timeout=5)
        return code


#: Small limits so the over-size cases stay small: 1 MB, 4 megapixels.
LIMITS = Limits(max_bytes=1024 * 1024, max_pixels=4_000_000)
#: TestClient sends `Host: testserver` unless told; the server answers only its own names.
LOCAL, WS = "http://localhost", "ws://localhost/ws"


def serve_engine(model_dir: Path, *options: str):  # -> pipeline.serve.engine.Engine
    """An engine as `ferflow serve --model-dir DIR OPTIONS` makes it."""
    from pipeline import cli
    from pipeline.serve import cli as serve_cli
    from pipeline.serve.engine import Engine

    args = cli.build_parser().parse_args(["serve", "--model-dir", str(model_dir), *options])
    first, new_stream, new_photo = serve_cli.serve_recognizers(args)
    return Engine(
        first,
        new_stream,
        smoothing=args.smoothing,
        limits=LIMITS,
        new_photo_recognizer=new_photo,
    )


def jpeg(image: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".jpg", image)[1].tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header (CRC fixed up, so it is a well-formed file) claims another size:
    what a decompression bomb looks like before its pixels are inflated."""
    import cv2

    data = bytearray(cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# ---------------------------------------------------------------------------------------
# Browser tests: Debian's Chromium driven by Playwright; a DVC plots page offline.
# ---------------------------------------------------------------------------------------

#: Where Chromium lives on Debian (.ci/run installs it), Ubuntu and GitHub's runners (Chrome);
#: FERFLOW_CHROMIUM names another build.
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
#: Headless as root, no GPU, and none of the background traffic a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    """The Chromium executable the browser tests drive; fails (never skips) without one."""
    for path in (os.environ.get("FERFLOW_CHROMIUM"), *CHROMIUM_PATHS):
        if path and Path(path).is_file():
            return path
    pytest.fail(
        "no Chromium found for the browser tests: `apt-get install chromium` (Debian/Ubuntu; "
        ".ci/run does it) or set FERFLOW_CHROMIUM to a Chromium or Chrome executable"
    )


LOCAL_URL = ("file:", "data:", "blob:", "about:")

# Keeps each Vega view the page's own vegaEmbed(...) calls create, to read its scales.
KEEP_VIEWS = """
(() => {
  let embed;
  window.ferflowViews = {};
  Object.defineProperty(window, "vegaEmbed", {
    configurable: true,
    set(value) { embed = value; },
    get() {
      return embed && ((el, spec, opts) => embed(el, spec, opts).then((result) => {
        window.ferflowViews[el.replace("#", "")] = result.view;
        return result;
      }));
    },
  });
})();
"""

# For each plot div DVC wrote: its Vega canvas or svg and how much it drew (the canvas's
# non-white pixels, the svg's shapes), and its images.
DRAWN = """
() => [...document.querySelectorAll("body > div[id]")].map((div) => {
  const marks = div.querySelector("canvas.marks, svg.marks");
  let inked = 0;
  if (marks && marks.tagName === "CANVAS") {
    const px = marks.getContext("2d").getImageData(0, 0, marks.width, marks.height).data;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] > 0 && Math.min(px[i], px[i + 1], px[i + 2]) < 230) inked++;  // not white
    }
  } else if (marks) {
    inked = marks.querySelectorAll("path, rect, line, text").length;
  }
  const images = [...div.querySelectorAll("img")];
  return {
    id: div.id,
    marks: marks ? marks.tagName.toLowerCase() : null,
    inked,
    images: images.length,
    imagesLoaded: images.filter((img) => img.complete && img.naturalWidth > 0).length,
  };
})
"""


@dataclasses.dataclass
class OpenedPage:
    vega: dict[str, dict | None]  # each Vega plot DVC wrote into the page, by id: its drawing
    divs: dict[str, dict]  # every plot div: its drawing and images
    confusion: dict  # confusion matrix: x and y scale domains, panels (revisions); F1 bars' y
    problems: list[str]  # blocked or failed requests, page errors


def open_offline(browser, page_file: Path, screenshot: Path) -> OpenedPage:
    """Open `page_file` with every non-local request blocked, wait for each Vega plot DVC
    wrote into it to draw, and screenshot it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    vega_ids = re.findall(r"vegaEmbed\('#([^']+)'", page_file.read_text(encoding="utf-8"))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []

    def local_only(route) -> None:
        if route.request.url.startswith(LOCAL_URL):
            route.continue_()
        else:
            problems.append(f"blocked: {route.request.url}")
            route.abort()

    page.route("**/*", local_only)
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.add_init_script(KEEP_VIEWS)
    page.goto(page_file.as_uri())
    try:
        page.wait_for_function(
            f"() => Object.keys(window.ferflowViews).length === {len(vega_ids)}", timeout=30_000
        )
    except PlaywrightTimeout:
        done = page.evaluate("() => Object.keys(window.ferflowViews)")
        raise AssertionError(f"{page_file}: drew {done} of {vega_ids}; {problems}") from None
    divs = {d["id"]: d for d in page.evaluate(DRAWN)}
    confusion = page.evaluate(
        """() => { const v = window.ferflowViews["confusion_matrix"];
                   const bars = window.ferflowViews["per_class_f1"];
                   return v && {x: v.scale("x").domain(), y: v.scale("y").domain(),
                                panels: v.data("column_domain").map((d) => d.rev ?? null),
                                per_class: bars && bars.scale("y").domain()}; }"""
    )
    page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return OpenedPage({i: divs.get(i) for i in vega_ids}, divs, confusion, problems)


# ---------------------------------------------------------------------------------------
# Leftovers of killed runs (pipeline/io.py names temporary files after their process).
# ---------------------------------------------------------------------------------------


def ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)
