"""Loop-IR passes, each in its own module, each a function ``PrimFunc -> PrimFunc``.

``PIPELINE`` is the order ``tl.lower`` runs them in; ``tl.lower(..., dump_ir=folder)`` (or the
environment variable ``TENSORLANG_DUMP_IR``) writes the IR after every pass.
"""

from .loop_partition import loop_partition
from .simplify import simplify
from .storage_flatten import storage_flatten
from .unroll import unroll_loops
from .vectorize import vectorize_loops
from .verify import verify

PIPELINE = [
    ("simplify", simplify),
    ("loop_partition", loop_partition),
    ("storage_flatten", storage_flatten),
    ("unroll", unroll_loops),
    ("vectorize", vectorize_loops),
    ("simplify_final", simplify),
]

FLAT_AFTER = "storage_flatten"

__all__ = ["PIPELINE", "simplify", "loop_partition", "storage_flatten", "unroll_loops",
           "vectorize_loops", "verify"]
