"""The settings `ferflow predict` and `ferflow live` start from, each with the reason for it.

Measured on this project's 2-core CPU (AMD EPYC, Zen 4) with the shipped model, on 640x480
frames holding three real FER2013 PrivateTest faces of 96-160 px each over photos
(`benchmarks/bench_detector.py`, `bench_peer.py`, `bench_live.py`; docs/app.md has the
tables) and on scikit-image's astronaut photo.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AppDefaults:
    #: CenterFace found 93-97% of 96- and 144-px faces in 14 CPU-ms a frame; OpenCV's Haar
    #: cascade (alt2) 55-69% in 22 ms, or 71-72% in 165 ms looking down to 24 px
    #: (`bench_detector.py`, one thread). detector.py has the model's provenance.
    detector: str = "centerface"
    #: Smallest face looked for, in frame pixels. It sets how far a frame is shrunk before
    #: detection: a 64-px face becomes 32 px, the smallest CenterFace finds reliably, so a
    #: 640x480 frame is searched at 320x240. Looking down to 48 px (the emotion model's own
    #: input size) finds 85% of 64-px faces instead of 46%, and 1.6 points more of 96-px
    #: ones, for 1.7x the detector's CPU time (24 ms instead of 14).
    min_face: int = 64
    #: The detector's input never exceeds this on its longer side (the cost cap for large
    #: photos; it wins over `min_face` when the two disagree).
    max_size: int = 1280
    #: CenterFace's heatmap score a face needs: at 0.1, 0.05 false boxes a frame; at 0.05, six
    #: times as many for 1-2 points more faces found; at 0.2, 2-3 points fewer faces found.
    threshold: float = 0.1
    #: In video, the detector runs on every n-th frame; the frames between reuse its boxes.
    detect_every: int = 1
    #: Weight of a tracked face's past probabilities (exponential moving average).
    smoothing: float = 0.6


#: Photos, folders and video files: every frame is detected, photos up to 1280 px searched
#: whole (a 12-megapixel photo at 1280x960: faces of 128 px and up).
PREDICT = AppDefaults()
#: Cameras and streams: a 1280x720 camera is searched at 640x360, so a frame costs about what
#: a 640x480 one does. The detector runs on every 2nd frame: on a 30 fps stream of three
#: faces (`bench_live.py`, int8 model, machine shared, load ~4) 29.5 frames were analysed a
#: second (2% skipped, 20 CPU-ms a frame) against 27.3 (9% skipped, 31 ms) detecting every
#: frame. A reused box is checked against its face's signature and never crosses a scene cut.
LIVE = AppDefaults(max_size=640, detect_every=2)
#: `ferflow serve`: the page sends camera frames scaled down to 320 pixels wide, half of
#: `live`'s 640, so the smallest face looked for is halved too (a 64-px face of a 640x480
#: camera is 32 px there, and the frame is searched unshrunk); the stream reuses boxes
#: like `live`. Photos are searched like `predict`'s, down to those 32 px.
SERVE = AppDefaults(min_face=32, detect_every=LIVE.detect_every)
