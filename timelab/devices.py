"""Which device to run on: the one place that picks it.

``pick_device()`` is ``cuda`` when a GPU is visible, else ``mps`` on Apple silicon, else ``cpu``;
``pick_device("cuda")`` on a machine without one is refused with a message saying what to use instead.
Every part of timelab that places a model (loading a pipeline, a CLIP judge, TinyWorld's training, the
evaluation runner) asks here, so a machine is read the same way everywhere.
"""

from __future__ import annotations

import torch

AUTO = "auto"


def gpu_available() -> bool:
    """Whether a CUDA GPU is visible to torch."""
    return torch.cuda.is_available()


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` or ``"auto"``: cuda, else mps, else cpu.

    A CUDA or MPS device asked for where there is none raises ``ValueError`` naming what is there.
    """
    if device is None or device == AUTO:
        return torch.device("cuda" if gpu_available() else "mps" if _mps_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not gpu_available():
        raise ValueError(f"device {str(device)!r} was asked for but no CUDA GPU is visible; use 'cpu'")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"device {str(device)!r} was asked for but Apple's MPS is not available; use 'cpu'")
    return device
