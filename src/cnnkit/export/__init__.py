"""Export to ONNX and TorchScript (``exporter``, with torch) and ONNX inference (``runtime``, without torch).

An exported model takes ``uint8`` images ``(N, C, H, W)``, normalises them itself and ends with its
task's post-processing; its task, classes, colours, input size and cnnkit version travel inside
the file (ONNX metadata properties, or TorchScript's extra file ``cnnkit.json``).
"""
