"""The one door to OpenCV: video files, cameras, streams, annotated videos, the desktop
window of `ferflow live` and the Haar detector need it; photos and `ferflow serve` do not.

OpenCV (about 160 MB) is the `ferflow[video]` extra, left out of the app's light install,
so nothing imports cv2 at module level: each use calls `require_opencv(purpose)` inside
the function that needs it, and a missing OpenCV becomes one line saying what needed it
and how to install it, not an ImportError deep in a traceback.
"""

from __future__ import annotations

import os
import threading
from types import ModuleType

from pipeline.app.errors import AppError

#: The pip command that adds OpenCV to the light install (pyproject's `video` extra).
INSTALL_HINT = "pip install 'ferflow[video]'"

_LOCK = threading.Lock()
_cv2: ModuleType | None = None


def require_opencv(purpose: str) -> ModuleType:
    """The cv2 module, imported (and silenced) at first use; AppError if it is missing.

    `purpose` starts the error message and names the input and what it needed, e.g.
    f"{path}: reading videos" -> "clip.mp4: reading videos needs OpenCV, which ferflow's
    light install leaves out; install it with: pip install 'ferflow[video]'".
    """
    global _cv2
    if _cv2 is not None:
        return _cv2
    with _LOCK:
        if _cv2 is None:
            try:
                import cv2
            except ModuleNotFoundError as e:
                if e.name != "cv2":  # OpenCV is there but one of its own imports is not
                    raise AppError(_broken(purpose, e)) from None
                raise AppError(
                    f"{purpose} needs OpenCV, which ferflow's light install leaves out; "
                    f"install it with: {INSTALL_HINT}"
                ) from None
            except ImportError as e:  # e.g. opencv-python without libGL on a server
                raise AppError(_broken(purpose, e)) from None
            _quiet(cv2)
            _cv2 = cv2
    return _cv2


def opencv_loaded() -> bool:
    """Whether `require_opencv` has imported OpenCV in this process."""
    return _cv2 is not None


def _broken(purpose: str, error: ImportError) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"{purpose} needs OpenCV, which is installed but does not load ({reason[:160]}); "
        f"reinstall it with: {INSTALL_HINT}"
    )


def _quiet(cv2: ModuleType) -> None:
    """Silence OpenCV's and FFmpeg's own console warnings: the app reports problems itself."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    # Read by OpenCV's FFmpeg backend when it first opens a file, which comes after this;
    # -8 is AV_LOG_QUIET.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
