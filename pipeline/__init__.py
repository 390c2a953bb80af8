"""ferflow: facial emotion recognition on FER2013, from raw CSV to a real-time app.

Kept empty on purpose: `import pipeline` must stay light so that the inference app
(`ferflow predict/live`) never pulls in TensorFlow, pandas or Great Expectations.
"""
