"""ONNX export of a siamtrack model (needs PyTorch, onnx and onnxscript: `pip install 'siamtrack[export]'`, or
`pip install '.[export]'` from a checkout).

The exported pair (template.onnx + search.onnx) runs with onnxruntime alone, see tracker.onnx_engine.
"""
