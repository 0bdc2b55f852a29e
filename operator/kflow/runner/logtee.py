"""Tee the process's stdout and stderr, at the file-descriptor level, to the store.

Owns: `FdTee`. It replaces fds 1 and 2 with pipes (``dup2``), so output of
``print``, of C extensions and of subprocesses that inherit the fds all
pass through it; a thread per stream copies each chunk to the original fd
(the container's output, what ``kubectl logs`` shows) and hands it to a
sink (the store's log sink, which uploads while the task runs, so a crash
still leaves the logs). A failing sink never stops the console copy.

Python's own ``sys.stdout`` / ``sys.stderr`` are switched to line
buffering so prints reach the log as they happen.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TextIO

__all__ = ["FdTee"]

_CHUNK = 64 * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        except OSError:
            return  # the console went away; the store copy still matters
        view = view[written:]


class _Stream:
    """One teed fd: the saved original, the pipe, and the copying thread."""

    def __init__(self, fd: int, pyfile: TextIO | None, sink: Callable[[bytes], object]) -> None:
        self.fd, self.pyfile, self.sink = fd, pyfile, sink
        self.errors: list[BaseException] = []
        if pyfile is not None:
            with contextlib.suppress(Exception):
                pyfile.flush()
        self.saved = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self.read_end = read_end
        self.thread = threading.Thread(target=self._copy, name=f"kflow-tee-{fd}", daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        sink_ok = True
        while True:
            try:
                data = os.read(self.read_end, _CHUNK)
            except OSError:
                break
            if not data:
                break
            _write_all(self.saved, data)
            if sink_ok:
                try:
                    self.sink(data)
                except Exception as exc:  # keep teeing to the console
                    self.errors.append(exc)
                    sink_ok = False

    def stop(self, timeout: float) -> None:
        if self.pyfile is not None:
            with contextlib.suppress(Exception):
                self.pyfile.flush()
        os.dup2(self.saved, self.fd)  # closes our pipe's write end at fd
        # A subprocess still holding the pipe keeps it open: do not wait forever.
        self.thread.join(timeout)
        if not self.thread.is_alive():
            os.close(self.read_end)
        os.close(self.saved)


class FdTee:
    """Copy fds 1 and 2 to their original targets and to sinks, while active.

    Parameters
    ----------
    sinks:
        ``{"stdout": write, "stderr": write}``: each gets every chunk of bytes
        written to that stream (called from a background thread).
    """

    def __init__(self, sinks: Mapping[str, Callable[[bytes], object]]) -> None:
        self._sinks = dict(sinks)
        self._streams: list[_Stream] = []

    def start(self) -> FdTee:
        for name, fd, pyfile in (("stdout", 1, sys.stdout), ("stderr", 2, sys.stderr)):
            sink = self._sinks.get(name)
            if sink is not None:
                self._streams.append(_Stream(fd, pyfile, sink))
        for pyfile in (sys.stdout, sys.stderr):
            reconfigure = getattr(pyfile, "reconfigure", None)
            if reconfigure is not None:
                with contextlib.suppress(Exception):
                    reconfigure(line_buffering=True)
        return self

    def stop(self, timeout: float = 2.0) -> list[BaseException]:
        """Restore fds 1 and 2, wait for the copies to drain; the sinks' errors."""
        errors: list[BaseException] = []
        for stream in self._streams:
            stream.stop(timeout)
            errors.extend(stream.errors)
        self._streams = []
        return errors

    def __enter__(self) -> FdTee:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
