"""The benchmark suite: tensorlang next to numpy and PyTorch. Run: python -m benchmarks"""
