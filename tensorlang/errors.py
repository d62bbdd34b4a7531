"""The error classes every user mistake raises.

Each subclasses :class:`TensorlangError` and also the builtin exception that fits
(``ValueError``, ``TypeError``, ``IndexError``), so ``except ValueError`` code keeps working.
"""


class TensorlangError(Exception):
    """Base class of every error tensorlang raises for a user mistake."""


class TensorlangValueError(TensorlangError, ValueError):
    """A value is wrong: a factor <= 0, an axis of another stage, a shape mismatch."""


class TensorlangTypeError(TensorlangError, TypeError):
    """A type is wrong: a dtype mismatch, an argument that is not an array, a bad arity."""


class ScheduleError(TensorlangValueError):
    """A schedule primitive was applied in a way that has no meaning."""


class LoweringError(TensorlangValueError):
    """A schedule could not be turned into loop IR (missing arguments, non-constant vector width)."""


class ArgumentError(TensorlangValueError):
    """A compiled function was called with arrays that do not match its signature."""


class TensorlangIOError(TensorlangError, OSError):
    """A library could not be written or loaded (missing file, not a tensorlang library)."""


class BoundsError(TensorlangError, IndexError):
    """A kernel built with ``bounds_check=True`` accessed a buffer outside its extent."""


class IRVerifyError(TensorlangError, AssertionError):
    """The IR verifier found a malformed program (a compiler bug, not a user mistake)."""
