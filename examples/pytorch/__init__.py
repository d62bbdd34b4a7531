"""PyTorch examples: how a model leaves Python as a graph (capture.py) and which ATen ops an
eager step runs through the dispatcher (dispatch.py)."""
