"""The PyTorch front end: capture a model with PyTorch's own mechanisms and compile it with
tensorlang.

* ``from_exported_program(ep)``: a ``torch.export`` program (decomposed to Core ATen) as a
  graph module, parameters as named constants; ``from_fx(gm, example_inputs)`` for an FX
  ``GraphModule``.
* ``torch.compile(model, backend="tensorlang")`` (registered as a ``torch_dynamo_backends``
  entry point; also ``tensorlang.frontend.torch_backend``): Dynamo captures, AOTAutograd
  makes the forward (and backward) graphs in Core ATen, the supported parts are compiled,
  the rest runs in PyTorch.
"""

from .fx_importer import (CONVERTERS, UnsupportedOpError, from_exported_program, from_fx,  # noqa: F401
                          import_graph, is_supported)
from .torch_backend import torch_backend  # noqa: F401

__all__ = ["CONVERTERS", "UnsupportedOpError", "from_exported_program", "from_fx", "import_graph",
           "is_supported", "torch_backend"]
