"""The DVC stages' entry points, one thin script per stage (`python -m stages.<name>`).

Importing this package (which `python -m stages.x` does first) keeps TensorFlow's native
start-up notes off the stage's output (pipeline/quiet.py).
"""

from pipeline.quiet import filter_native_stderr

filter_native_stderr()
