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
    #: CenterFace found 95.7% of those faces where OpenCV's best Haar cascade found 67-71%,
    #: at about the same CPU time per frame (detector.py has the model's provenance).
    detector: str = "centerface"
    #: Smallest face looked for, in frame pixels. It sets how far a frame is shrunk before
    #: detection: a 64-px face becomes 32 px, the smallest CenterFace finds reliably, so a
    #: 640x480 frame is searched at 320x240. Looking down to 48 px (the emotion model's own
    #: input size) found 97.3% instead of 95.7% of the faces but cost 1.5x the CPU time.
    min_face: int = 64
    #: The detector's input never exceeds this on its longer side (the cost cap for large
    #: photos; it wins over `min_face` when the two disagree).
    max_size: int = 1280
    #: CenterFace's heatmap score a face needs: at 0.1, 3 false boxes in 100 frames; at 0.05,
    #: 40 (+1.3 points of faces found); at 0.2, 4 points fewer faces found.
    threshold: float = 0.1
    #: In video, the detector runs on every n-th frame; the frames between reuse its boxes.
    detect_every: int = 1
    #: Weight of a tracked face's past probabilities (exponential moving average).
    smoothing: float = 0.6
    #: ONNX Runtime threads per model (None: one per core).
    threads: int | None = None


#: Photos, folders and video files: every frame is detected, photos up to 1280 px searched
#: whole (a 12-megapixel photo at 1280x960: faces of 128 px and up).
PREDICT = AppDefaults()
#: Cameras and streams: a 1280x720 camera is searched at 640x360, so a frame costs about what
#: a 640x480 one does; every frame is detected, because with the int8 model a frame of three
#: faces takes ~25 CPU-ms and reusing boxes would only save time the camera does not give.
LIVE = AppDefaults(max_size=640)
