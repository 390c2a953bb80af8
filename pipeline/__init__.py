"""ferflow: facial emotion recognition on FER2013, from raw CSV to a real-time app.

Kept light on purpose: `import pipeline` must not pull in TensorFlow, pandas or Great
Expectations, so that the inference app (`ferflow predict/live/serve`) stays small. It only
sets two TensorFlow defaults, which must be in place before TensorFlow is first imported
and which an explicitly set variable overrides.
"""

import os

# TensorFlow prints ~40 lines of start-up notes (with a CUDA error on machines that have no
# GPU) before anything ferflow says; FERFLOW_VERBOSE=1 keeps them.
if not os.environ.get("FERFLOW_VERBOSE"):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The same commit must reproduce the same metrics: TensorFlow's deterministic kernels
# (a no-op on JAX, whose CPU kernels are deterministic already).
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
