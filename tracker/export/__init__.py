"""ONNX export of a siamtrack model (needs PyTorch, onnx and onnxscript: `pip install 'siamtrack[export]'`).

The exported pair (template.onnx + search.onnx) runs with onnxruntime alone, see tracker.onnx_engine.
"""
