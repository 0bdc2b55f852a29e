"""Task logs written while the task runs, as numbered segments, and read back whole.

Owns: `LogSink`, which buffers a stream's bytes and uploads them as a new
segment object (``logs/<stream>/000001``, ``000002``, ...) every `interval`
seconds or as soon as `max_buffer` bytes are waiting, from a background
thread; and `read_log`, which concatenates a log's segments in order. A task
that crashes (or is OOM-killed) keeps everything up to its last upload,
at most `interval` seconds old, and logs are readable before the attempt is
DONE. Segments are never rewritten, so readers need no locking.

Upload failures do not disturb the task: the bytes stay buffered and are
retried at the next tick; `close()` raises `StoreUnavailable` if the final
upload still fails.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from kflow.store.backend import ObjectStore
from kflow.store.errors import StoreUnavailable
from kflow.store.layout import AttemptKey, StoreLayout

__all__ = ["LogSink", "list_log_segments", "read_log"]

MiB = 1 << 20
DEFAULT_INTERVAL = 2.0
DEFAULT_MAX_BUFFER = 1 * MiB


def list_log_segments(objects: ObjectStore, layout: StoreLayout, key: AttemptKey,
                      stream: str) -> list[tuple[int, str]]:
    """(index, key) of every segment of a log, in order."""
    prefix = layout.log_prefix(key, stream)
    found = []
    for obj in objects.list(prefix):
        index = layout.log_segment_index(obj[len(prefix):])
        if index is not None:
            found.append((index, obj))
    return sorted(found)


def read_log(objects: ObjectStore, layout: StoreLayout, key: AttemptKey, stream: str,
             workers: int = 8) -> bytes:
    """The log so far: its segments concatenated (b"" if there are none)."""
    keys = [k for _, k in list_log_segments(objects, layout, key, stream)]
    if len(keys) <= 1:
        return b"".join(objects.get(k) for k in keys)
    with ThreadPoolExecutor(min(workers, len(keys))) as pool:
        return b"".join(pool.map(objects.get, keys))


class LogSink:
    """A writable binary stream whose contents go to the store in segments.

    Thread-safe. Use as a context manager, or call `close()` at the end.
    """

    def __init__(self, objects: ObjectStore, layout: StoreLayout, key: AttemptKey,
                 stream: str, *, interval: float = DEFAULT_INTERVAL,
                 max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.objects = objects
        self.layout = layout
        self.key = key
        self.stream = stream
        self.interval = interval
        self.max_buffer = max_buffer
        layout.log_prefix(key, stream)  # validates the stream name
        existing = list_log_segments(objects, layout, key, stream)
        self._next_index = existing[-1][0] + 1 if existing else 1
        self._buffer = bytearray()
        self._lock = threading.Lock()              # guards _buffer and _closed
        self._upload_lock = threading.Lock()       # one upload at a time, in order
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"kflow-log-{stream}")
        self._thread.start()

    def __enter__(self) -> LogSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def segments_written(self) -> int:
        return self._next_index - 1

    def write(self, data: bytes | bytearray | memoryview | str) -> int:
        """Buffer `data` (str is UTF-8 encoded); returns the number of bytes taken."""
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
        with self._lock:
            if self._closed:
                raise ValueError("write to a closed LogSink")
            self._buffer += raw
            if len(self._buffer) >= self.max_buffer:
                self._wake.notify()
        return memoryview(raw).nbytes

    def flush(self) -> None:
        """Upload what is buffered now (raises the store's error if that fails)."""
        self._upload()

    def _upload(self) -> None:
        with self._upload_lock:
            with self._lock:
                data, self._buffer = bytes(self._buffer), bytearray()
            if not data:
                return
            segment = self.layout.log_segment(self.key, self.stream, self._next_index)
            try:
                self.objects.put(segment, data)
            except BaseException:
                with self._lock:  # keep the bytes, in order, for the next try
                    self._buffer[:0] = data
                raise
            self._next_index += 1

    def _run(self) -> None:
        failed = False
        while True:
            with self._lock:
                if not self._closed and (failed or len(self._buffer) < self.max_buffer):
                    self._wake.wait(self.interval)
                if self._closed:
                    return
            try:
                self._upload()
                self.last_error, failed = None, False
            except Exception as exc:  # never kill the task over its logs; retry next tick
                self.last_error, failed = exc, True

    def close(self) -> None:
        """Stop the background thread and upload the rest."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
        self._thread.join()
        try:
            self._upload()
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"could not upload the last {self.stream} log segment: "
                                   f"{exc}") from exc
