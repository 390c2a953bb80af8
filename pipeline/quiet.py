"""Keep TensorFlow's native start-up notes off a stage's terminal.

TensorFlow 2.21 writes them from C++ before its logging is set up (`I0000 ... port.cc:153]
oneDNN custom operations are on ...`, `cudart_stub.cc ... Could not find cuda drivers`, a
`cuInit` *error* on every machine without a GPU), and TF_CPP_MIN_LOG_LEVEL no longer
reaches them. So a stage's file descriptor 2 goes through a pipe whose reader drops lines
of that shape and passes every other line (Python warnings, tracebacks, ferflow's own
messages) on unchanged. FERFLOW_VERBOSE=1 turns the filter off.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

#: absl/glog lines (`I0000 00:00:1796165112.130106   18626 port.cc:153] ...`) and the two
#: plain lines TensorFlow adds around them.
NOISE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|To enable the following instructions: )"
)


def filter_native_stderr() -> None:
    """From now until exit, drop TensorFlow's native log lines from this process's stderr."""
    if os.environ.get("FERFLOW_VERBOSE"):
        return
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    terminal = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as lines, os.fdopen(terminal, "wb", buffering=0) as out:
            for line in lines:
                if not NOISE.match(line):
                    out.write(line)

    thread = threading.Thread(target=pump, name="ferflow-stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        # fd 2 back to the terminal: that closes the pipe's last write end, so the reader
        # passes on what is left and stops.
        sys.stderr.flush()
        os.dup2(terminal, 2)
        thread.join(timeout=5)

    atexit.register(restore)
