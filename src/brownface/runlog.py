"""Running a stage: logging, threads, progress, and one-line errors.

The Snakemake adapters run inside :func:`snakemake_job`; it sends log records to the rule's log
file and to stderr, caps torch's threads to the rule's ``threads``, and turns a
:class:`UserError` into one line and exit code 1. Progress is a tqdm bar on a terminal and periodic log lines otherwise
(Snakemake logs are files, where a bar would be noise).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from tqdm import tqdm

from brownface.errors import UserError

log = logging.getLogger("brownface")


def tune_allocator() -> bool:
    """Keep freed memory in the process (glibc ``mallopt``) instead of returning it to the OS.

    PyTorch's CPU kernels allocate and free large temporaries every call; with glibc's default
    thresholds each one is mmapped, faulted in page by page and unmapped again, which halves the
    renderer's throughput and makes it erratic. Raising the mmap and trim thresholds keeps those
    blocks on the heap. A no-op (returning False) where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = mallopt(m_mmap_threshold, 256 << 20) == 1
    ok &= mallopt(m_trim_threshold, 1 << 30) == 1
    ok &= mallopt(m_top_pad, 64 << 20) == 1
    return bool(ok)


def share_library_path(src: str) -> None:
    """Put ``src`` first on PYTHONPATH so job processes import this checkout's brownface."""
    current = os.environ.get("PYTHONPATH", "")
    parts = [src] + [p for p in current.split(os.pathsep) if p and p != src]
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)


def or_exit(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)``, or one ``brownface: error:`` line and exit 1 on UserError
    (for the Snakefile, where a traceback would bury the message)."""
    try:
        return func(*args, **kwargs)
    except UserError as exc:
        sys.stderr.write(f"brownface: error: {exc}\n")
        sys.exit(1)


def configure_logging(log_file: str | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


@contextmanager
def snakemake_job(smk: Any) -> Iterator[None]:
    """The body of a Snakemake adapter: logs to the job's log file and stderr, torch threads
    capped to the rule's ``threads``, and a UserError (a bad param included) as one logged
    line and exit code 1."""
    configure_logging(smk.log[0] if len(smk.log) else None)
    torch.set_num_threads(max(1, int(smk.threads)))
    tune_allocator()
    try:
        yield
    except UserError as exc:
        log.error("%s", exc)
        sys.exit(1)


class _LogProgress:
    """tqdm's update/close interface, logging about every 10% (or 60 s) instead of drawing."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.done = max(total, 1), desc, 0
        self.start = self.last = time.monotonic()
        self.next_fraction = 0.1

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.done / self.total >= self.next_fraction or now - self.last > 60:
            rate = self.done / max(now - self.start, 1e-9)
            log.info("%s: %d/%d (%.0f/s)", self.desc, self.done, self.total, rate)
            self.last = now
            while self.next_fraction <= self.done / self.total:
                self.next_fraction += 0.1

    def close(self) -> None:
        pass

    def __enter__(self) -> _LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: int, desc: str, unit: str = "it"):
    """A progress bar on a terminal, periodic log lines otherwise."""
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit)
    return _LogProgress(total, desc)
