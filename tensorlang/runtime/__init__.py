"""Runtime: compiled modules, argument checking, timing, export/load, parallel threads."""
from .module import Module, TimeResult, load_module  # noqa: F401
from .parallel import get_num_threads, set_num_threads  # noqa: F401
from .timing import interleaved  # noqa: F401
