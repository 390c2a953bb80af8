"""The real-time app: `ferflow predict` and `ferflow live`.

It runs an exported model (`emotion.onnx` + `labels.json`) with ONNX Runtime and finds faces
with OpenCV's bundled Haar cascade, so it needs only numpy, opencv, onnxruntime, pyyaml and
tqdm: never TensorFlow, Keras, pandas or the training code. `tests/test_app_imports.py`
checks that.

Modules, bottom up: `errors` (the one exception a user sees), `emotion` (the ONNX model),
`detector` (faces), `tracking` (per-face smoothing), `recognizer` (one frame -> faces),
`media` (reading images, folders, videos, cameras; writing annotated copies), `draw`,
`records` (JSON lines), `ordered` (several frames at once, results in order), `predict` and
`live` (the two commands), `model_info` (what a loaded model says about itself), `version`,
`cli` (the two commands' options, and the model options `serve` and `batch` share; the
`ferflow` command itself is `pipeline.cli`, above every layer).
"""
