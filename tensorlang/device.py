"""Devices, for TVM compatibility: tensorlang compiles for the CPU it runs on, so a device is
only a label that ``tl.nd.array`` and ``time_evaluator`` accept and ignore."""

from dataclasses import dataclass

from .errors import TensorlangValueError


@dataclass(frozen=True)
class Device:
    device_type: str = "cpu"
    device_id: int = 0


def device(dev_type="cpu", dev_id: int = 0) -> Device:
    """``tl.device("llvm", 0)`` or ``tl.device("cpu")``; other devices raise a clear error."""
    name = getattr(getattr(dev_type, "kind", None), "name", dev_type)
    if str(name).split()[0] not in ("cpu", "llvm"):
        raise TensorlangValueError(f"device {dev_type!r}: tensorlang targets CPUs only ('llvm'/'cpu')")
    return Device("cpu", dev_id)


def cpu(dev_id: int = 0) -> Device:
    return Device("cpu", dev_id)
