"""Teacher and student zoo: every model is an :class:`~compressor.models.encoder.Encoder`."""

from compressor.models.encoder import Encoder, InputSpec

__all__ = ["Encoder", "InputSpec"]
