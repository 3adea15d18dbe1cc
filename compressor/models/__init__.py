"""Teacher and student zoo: every model is an :class:`~compressor.models.encoder.Encoder`.

``Encoder`` loads torch on first use, so the zoo's specs (:mod:`compressor.models.teacher_specs`) list
without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compressor.models.inputs import InputSpec

if TYPE_CHECKING:
    from compressor.models.encoder import Encoder

__all__ = ["Encoder", "InputSpec"]


def __getattr__(name: str) -> Any:
    if name == "Encoder":
        from compressor.models.encoder import Encoder

        return Encoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
