"""Decoding and encoding beside the network: two worker threads behind small bounded queues.

A retime decodes, interpolates and encodes. Done one after the other, the network waits for
the decoder and the encoder, which on a GPU (a fast network) is much of the wall time. Here
the decoder runs ahead of the network in one thread (`ReadAhead`) and the encoder behind it
in another (`EncodeThread`), while the caller's thread runs the network.

Conventions:
    * Bounded: a queue holds a few frames, fewer when they are large (`queue_depth`), so
      memory does not grow with the clip and no thread runs far from the network.
    * Errors keep their identity: a worker's exception is raised again in the caller's
      thread as the same object (type, message, errno, the worker's traceback), where the
      sequential run would have met it: a decode error after the frames decoded before it,
      an encode error at the next write or when the block ends.
    * Nothing outlives its `with` block: leaving it, normally or on an exception (a cancel
      included), stops the thread and joins it. On an exception the encoder drops the frames
      it has not started (a resume redoes them); on a normal exit it writes them all first.
    * Callbacks stay in the caller's thread: the workers only decode and write.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, Iterable, Iterator, NamedTuple, Optional, TypeVar

import torch

T = TypeVar("T")

DECODE_AHEAD = 2  # decoded frames waiting for the network, at most (the next pair's, and one spare)
ENCODE_BEHIND = 4  # output frames waiting for the encoder, at most (one tau batch)
QUEUE_BYTES = 256 * 2 ** 20  # and at most this much per queue: fewer frames at 4K and 8K


def queue_depth(most: int, frame_bytes: int) -> int:
    """`most` frames, fewer where they would take more than `QUEUE_BYTES`; at least one."""
    return max(1, min(most, QUEUE_BYTES // max(1, frame_bytes)))


def queue_depths(height: int, width: int, decoded_dtype: torch.dtype) -> tuple[int, int]:
    """(decoded frames read ahead, output frames queued for the encoder) for frames of this
    size: fewer for large frames, so the queues stay small in bytes too. Decoded frames are
    `decoded_dtype`; the encoder's are float32 at most (the in-betweens; originals as decoded)."""
    pixels = 3 * height * width
    return (queue_depth(DECODE_AHEAD, pixels * decoded_dtype.itemsize),
            queue_depth(ENCODE_BEHIND, pixels * torch.float32.itemsize))


class _Failure(NamedTuple):
    error: BaseException


_END = object()  # the last item a queue carries


class ReadAhead(Generic[T]):
    """Iterates `items` in a worker thread, at most `depth` items ahead of the caller.

    A context manager: iterate it inside the `with` block. The items come in order, then the
    iterator's exception, if it raised one. Leaving the block stops the worker (closing
    `items` if it is a generator) and joins it.
    """

    def __init__(self, items: Iterable[T], depth: int, name: str = "hifi-decode"):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> "ReadAhead[T]":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        _drain(self._queue)  # a worker waiting on a full queue gets room, sees the stop, ends
        self._thread.join()
        _drain(self._queue)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def _run(self) -> None:
        try:
            for item in self._items:
                self._queue.put(item)
                if self._stop.is_set():
                    return
            self._queue.put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self._queue.put(_Failure(error))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (the decoder's file) runs here


class EncodeThread:
    """`write(index, frame)` in a worker thread, behind a queue of `depth` frames.

    A context manager: `write` inside the `with` block hands a frame over and returns at once
    (unless `depth` frames are waiting). Leaving the block normally waits until every frame
    is written; leaving it on an exception drops the frames not yet started. Either way the
    worker has ended, and its error, if it had one, is raised: it came first in frame order,
    so it wins over the block's own exception (not over a KeyboardInterrupt).

    `write` must not be used by another thread while the block runs; frames handed over must
    not be changed afterwards (the in-betweens are new tensors on every interpolator call).
    """

    def __init__(self, write: Callable[[int, torch.Tensor], None], depth: int, name: str = "hifi-encode"):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._drop = threading.Event()  # set on an exception: skip what is still queued
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> "EncodeThread":
        self._thread.start()
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is not None:
            self._drop.set()
        self._queue.put(_END)  # the worker keeps taking frames (and drops them after a failure)
        self._thread.join()
        failed = self._error
        if failed is not None and failed is not error and not isinstance(error, KeyboardInterrupt):
            raise failed
        return False

    def write(self, index: int, frame: torch.Tensor) -> None:
        """Hand output frame `index` over; raises the worker's error if it has failed."""
        if self._error is not None:
            raise self._error
        self._queue.put((index, frame))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is not None or self._drop.is_set():
                continue
            try:
                self._write(*item)
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                self._error = error


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
