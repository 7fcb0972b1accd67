"""Exceptions raised by hifi_core.

Every error a user can cause is one of these, with a message that names the bad input and
says how to fix it. They subclass the built-in types callers already catch.
"""


class HiFIInputError(ValueError):
    """A frame, setting or argument given to hifi_core is unusable; the message says why."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, not safetensors, or of another architecture."""


class Cancelled(RuntimeError):
    """The caller's cancel check asked to stop; raised between denoising steps."""


class NonFiniteOutputError(HiFIInputError):
    """A computation produced NaN or inf (half-precision overflow, bad weights or settings)."""
