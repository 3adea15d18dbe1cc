"""The built-in export backends, one module each (registered with :data:`compressor.export.backend.EXPORT_BACKENDS`
through the ``compressor.export_backends`` entry points in pyproject.toml): ``onnxruntime`` (onnx, onnx-fp16,
onnx-int8), ``openvino`` (openvino, openvino-int8), ``tensorrt`` (trt, trt-fp16, trt-int8)."""
