"""The one exception the app shows to users: a clear one-line message, no traceback."""

from __future__ import annotations


class AppError(Exception):
    """A problem with the user's input (files, camera, model); `ferflow` prints it and exits 1.

    The message names the input, says what was expected and what to do, on one line.
    """
