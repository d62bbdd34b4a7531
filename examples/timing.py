from tensorlang.runtime import interleaved  # noqa: F401  (temporary shim, remove)
