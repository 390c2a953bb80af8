"""The error a pipeline stage reports in one line, without a traceback.

Raised for input the user can fix (a failed export check, outputs that do not match, a
missing setting); `pipeline.stage.run_stage` prints its message and exits 1. Bad CSV data
has its own `pipeline.data.errors.DataError`.
"""


class StageError(RuntimeError):
    """A stage refuses to go on; the message names the file or key and what to do."""
