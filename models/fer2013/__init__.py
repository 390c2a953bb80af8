"""The shipped FER2013 model as package data: pyproject.toml maps this folder onto the package
`pipeline.shipped_model`, so `pip install ferflow` carries emotion*.onnx and labels.json and
the app finds them with importlib.resources (pipeline/app/emotion.py). No code lives here."""
