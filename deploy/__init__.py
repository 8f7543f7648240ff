"""Serving a trained model on CPUs: ONNX export (export.py) and the inference benchmark (bench.py)."""
