"""Fast encode backends behind the same ``encode`` call: ONNX Runtime fp32 and int8 (export, load, run)."""
