"""Export: ONNX (float32, optionally float16), labels.json, model card, Keras formats, parity."""
