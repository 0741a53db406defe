"""Device, dtype and thread defaults: CUDA when available, float32 for models, float64 for analyses; torch
threads pinned only where the caller asks (:func:`torch_threads`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from .errors import InvalidInputError

_DTYPES = {torch.float32, torch.float64}


def default_device() -> torch.device:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a :class:`torch.device` that exists on this machine (``None``: :func:`default_device`).

    Raises :class:`InvalidInputError` for a malformed name, and for a CUDA device on a machine without one (or
    with fewer GPUs than its index), instead of torch's ``AssertionError`` deep inside the first allocation.
    """
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(f"device must be a torch device such as 'cpu' or 'cuda'; got {device!r}.") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(f"device={str(dev)!r}: CUDA is not available on this machine (no GPU, or torch "
                                    "built without CUDA); pass device='cpu' or None (picks CUDA only when present).")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidInputError(f"device={str(dev)!r}: this machine has {torch.cuda.device_count()} CUDA "
                                    f"device(s), indices 0..{torch.cuda.device_count() - 1}; pass one of those.")
    return dev


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[int]:
    """Run a block with ``num_threads`` torch threads and BLAS / OpenMP pools of that size (threadpoolctl),
    restoring the previous settings afterwards.

    ``None`` leaves torch's setting alone.  On small unrolled networks (n of a few hundred) one thread is
    usually fastest, and on a shared or loaded machine torch's default (one thread per core) can be 10-40x
    slower (measured in ``verification/benchmarks/bench_threads.py``); the library never changes the global
    setting on its own, it only pins threads for the duration of a call that was given ``num_threads``.

    Yields the number of threads in force inside the block.
    """
    if num_threads is None:
        yield torch.get_num_threads()
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise InvalidInputError(f"num_threads must be a positive integer or None (keep torch's setting); "
                                f"got {num_threads!r}.")
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    logging.getLogger("unfoldtheory").debug("torch threads %d -> %d for this call", before, num_threads)
    with contextlib.ExitStack() as stack:
        # numpy/scipy's BLAS and OpenMP pools too: the same thread count gives the same summation order, so a
        # run gives bit-identical numbers serially and on n single-threaded workers
        from threadpoolctl import threadpool_limits

        stack.enter_context(threadpool_limits(limits=num_threads))
        try:
            yield num_threads
        finally:
            torch.set_num_threads(before)


def resolve_dtype(dtype: torch.dtype | None) -> torch.dtype:
    dtype = torch.float32 if dtype is None else dtype
    if dtype not in _DTYPES:
        raise InvalidInputError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}.")
    return dtype
