"""Runtime: compiled modules and kernels, argument checking, workspaces, timing, export/load,
parallel threads."""
from .module import Kernel, Module, PreparedCall, TimeResult, load_module, workspace  # noqa: F401
from .parallel import get_num_threads, set_num_threads  # noqa: F401
from .timing import interleaved  # noqa: F401
