"""Code generation: loop IR -> LLVM IR -> machine code for a CPU target."""
from .llvm import codegen  # noqa: F401
from .target import Target  # noqa: F401
