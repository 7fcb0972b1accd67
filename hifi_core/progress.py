"""Progress reporting and cancellation hooks.

The library never decides how progress is shown: every long loop reports a `ProgressEvent`
to an optional callback (tqdm in the CLI, `comfy.utils.ProgressBar` in ComfyUI) and asks an
optional cancel check between denoising steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    """One unit of denoising work finished.

    `units_done` / `units_total` count network evaluations of single patches over the whole
    job (all pairs, levels, samples and steps), so a progress bar can be driven from them alone.

    Attributes:
        level, num_levels (int): the cascade level being denoised (0 = coarsest) and how many.
        step, num_steps (int): the DDIM step within the level and the steps per level.
        sample, num_samples (int): the averaged sample being drawn and how many.
        patches_done, patches_total (int): patches of this step finished, and the level's patches.
        units_done, units_total (int): patch evaluations of the whole job, done and in all.
    """

    level: int
    num_levels: int
    step: int
    num_steps: int
    sample: int
    num_samples: int
    patches_done: int
    patches_total: int
    units_done: int
    units_total: int


ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], Optional[bool]]


class ProgressCounter:
    """Counts patch evaluations over a whole job and forwards them as ProgressEvents."""

    def __init__(self, total_units: int, callback: Optional[ProgressCallback] = None):
        self.total_units = total_units
        self.done_units = 0
        self.callback = callback

    def advance(self, units: int, **fields) -> None:
        self.done_units += units
        if self.callback is not None:
            self.callback(ProgressEvent(units_done=self.done_units, units_total=self.total_units, **fields))


def check_cancel(cancel: Optional[CancelCheck]) -> None:
    """Raise `Cancelled` if the cancel check returns True (it may also raise on its own)."""
    if cancel is not None and cancel():
        raise Cancelled("interpolation cancelled by the caller")
