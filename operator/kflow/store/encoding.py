"""How a value becomes stored bytes and back (pure: no I/O).

Owns: the blob format, the fast paths and the compression decision. Every
stored blob is::

    b"KFL1" | u32 little-endian n | n bytes of header JSON | payload

The header says how to read the payload::

    {"kind": "bytes" | "str" | "ndarray" | "pickle",
     "codec": "zstd" | null,         payload compressed with zstandard, or raw
     "raw_size": int,                payload size before compression
     "type": "numpy.ndarray",        the value's qualified type name
     "dtype": "<f8", "shape": [...], "order": "C" | "F"}    (ndarray only)

Fast paths (no pickling): `bytes` and `str` (UTF-8) as themselves; numpy
arrays with a plain dtype (not object, not structured, exact `ndarray` type)
as their raw memory in C or Fortran order, so encoding makes no copy of a
contiguous array. Everything else goes through `cloudpickle` (protocol 5).

Compression: zstandard level 1, only when it pays. A payload up to
`PROBE_BYTES` is compressed and kept only if the result is at most
`COMPRESS_MIN_RATIO` of the raw size; a larger payload is compressed only if
its first `PROBE_BYTES` compress that well (random / already-compressed data
costs one 1 MB probe, not a pass over the whole value).

The sha256 content address covers header and payload (the stored bytes), so
the same value with a different encoding is a different blob. numpy is
imported only when a value is a numpy array or a blob holds one.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from kflow.store.backend import Buffer
from kflow.store.errors import CorruptArtifact, UnpicklableArtifact

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "COMPRESS_MIN_RATIO",
    "MAGIC",
    "PROBE_BYTES",
    "Encoded",
    "Header",
    "decode",
    "decode_payload",
    "decompress_into",
    "empty_ndarray",
    "encode",
    "hash_buffers",
    "parse_header",
    "worth_compressing",
]

MAGIC = b"KFL1"
_LEN = struct.Struct("<I")
PREFIX_FIXED = len(MAGIC) + _LEN.size      # bytes before the header JSON
PROBE_BYTES = 1 << 20                      # sample compressed to decide
COMPRESS_MIN_RATIO = 0.9                   # keep compression only if <= 90% of raw
ZSTD_LEVEL = 1
_THREADED_ABOVE = 16 << 20                 # use zstd's worker threads above this
PICKLE_PROTOCOL = 5
KINDS = ("bytes", "str", "ndarray", "pickle")


@dataclass(frozen=True)
class Header:
    """The decoded header of a blob."""

    kind: str
    codec: str | None
    raw_size: int
    type_name: str
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    order: str | None = None

    @property
    def encoding(self) -> str:
        """``kind`` or ``kind+codec`` (what `ArtifactRef.encoding` records)."""
        return f"{self.kind}+{self.codec}" if self.codec else self.kind

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {"kind": self.kind, "codec": self.codec,
                               "raw_size": self.raw_size, "type": self.type_name}
        if self.kind == "ndarray":
            doc.update(dtype=self.dtype, shape=list(self.shape or ()), order=self.order)
        body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        return MAGIC + _LEN.pack(len(body)) + body


@dataclass(frozen=True)
class Encoded:
    """A value as stored bytes: `prefix` (magic + header) then `payload`.

    `payload` may be a view of the value's own memory (a numpy array's
    buffer): keep the value alive and unchanged until the blob is stored.
    """

    header: Header
    prefix: bytes
    payload: Buffer
    _digest: list[str] = field(default_factory=list, compare=False, repr=False)

    @property
    def buffers(self) -> tuple[Buffer, Buffer]:
        return (self.prefix, self.payload)

    @property
    def size(self) -> int:
        return len(self.prefix) + memoryview(self.payload).nbytes

    @property
    def encoding(self) -> str:
        return self.header.encoding

    @property
    def type_name(self) -> str:
        return self.header.type_name

    def sha256(self) -> str:
        """The content address (computed once, then remembered)."""
        if not self._digest:
            self._digest.append(hash_buffers(self.buffers))
        return self._digest[0]


def hash_buffers(buffers: Sequence[Buffer]) -> str:
    """sha256 hex digest of the concatenation of `buffers` (no joining copy)."""
    digest = hashlib.sha256()
    for buf in buffers:
        digest.update(buf)
    return digest.hexdigest()


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" \
        else f"{kind.__module__}.{kind.__qualname__}"


def _is_plain_ndarray(value: object) -> bool:
    kind = type(value)
    if kind.__name__ != "ndarray" or kind.__module__ != "numpy":
        return False
    dtype = value.dtype  # type: ignore[attr-defined]
    return not dtype.hasobject and dtype.fields is None and dtype.itemsize > 0


def _ndarray_payload(array: np.ndarray[Any, Any]) -> tuple[memoryview, str, Any]:
    """(bytes view, order, array kept alive): the array's memory with no copy if contiguous."""
    import numpy as np

    if array.flags.c_contiguous:
        order = "C"
    elif array.flags.f_contiguous:
        order = "F"
    else:
        array = np.ascontiguousarray(array)  # a strided view: one copy is unavoidable
        order = "C"
    flat = array.ravel(order="K")  # a view, in memory order
    return memoryview(cast(Any, flat.view(np.uint8))), order, array


def worth_compressing(raw: Buffer, compressed: Buffer) -> bool:
    """Whether `compressed` is small enough, relative to `raw`, to be worth storing."""
    raw_n = memoryview(raw).nbytes
    return raw_n > 0 and memoryview(compressed).nbytes <= raw_n * COMPRESS_MIN_RATIO


def _compress(data: Buffer) -> bytes:
    import zstandard

    threads = -1 if memoryview(data).nbytes > _THREADED_ABOVE else 0
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=threads).compress(data)


def _maybe_compress(payload: Buffer) -> tuple[Buffer, str | None]:
    view = memoryview(payload)
    if view.nbytes <= PROBE_BYTES:
        small = _compress(view)
        return (small, "zstd") if worth_compressing(view, small) else (payload, None)
    if not worth_compressing(view[:PROBE_BYTES], _compress(view[:PROBE_BYTES])):
        return payload, None
    whole = _compress(view)
    return (whole, "zstd") if worth_compressing(view, whole) else (payload, None)


def encode(value: object, name: str = "", compress: bool = True) -> Encoded:
    """Serialize `value` (see the module docstring). `name` is used in errors only.

    Raises `UnpicklableArtifact` naming `name` and the type if pickling fails.
    """
    type_name = _type_name(value)
    extra: dict[str, Any] = {}
    payload: Buffer
    if type(value) is bytes:
        kind, payload = "bytes", value
    elif type(value) is str:
        kind, payload = "str", value.encode("utf-8", "surrogatepass")
    elif _is_plain_ndarray(value):
        kind = "ndarray"
        payload, order, kept = _ndarray_payload(value)  # type: ignore[arg-type]
        extra = {"dtype": kept.dtype.str, "shape": tuple(kept.shape), "order": order}
    else:
        import cloudpickle

        kind = "pickle"
        try:
            payload = cloudpickle.dumps(value, protocol=PICKLE_PROTOCOL)
        except Exception as exc:  # pickling raises many types: TypeError, PicklingError, ...
            raise UnpicklableArtifact(name or "<unnamed>", type_name,
                                      f"{type(exc).__name__}: {exc}") from exc
    raw_size = memoryview(payload).nbytes
    codec: str | None = None
    if compress:
        payload, codec = _maybe_compress(payload)
    header = Header(kind=kind, codec=codec, raw_size=raw_size, type_name=type_name, **extra)
    return Encoded(header=header, prefix=header.to_bytes(), payload=payload)


def parse_header(data: Buffer) -> tuple[Header, int] | int:
    """The header of a blob starting with `data`, and where its payload starts.

    If `data` is too short to hold the whole header, returns the number of
    bytes needed instead. Raises `CorruptArtifact` if it is not a kflow blob.
    """
    view = memoryview(data)
    if view.nbytes < PREFIX_FIXED:
        return PREFIX_FIXED
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise CorruptArtifact("stored bytes are not a kflow artifact (bad magic)")
    length = int(_LEN.unpack(view[len(MAGIC):PREFIX_FIXED])[0])
    end = PREFIX_FIXED + length
    if view.nbytes < end:
        return end
    try:
        doc = json.loads(bytes(view[PREFIX_FIXED:end]))
        header = Header(
            kind=str(doc["kind"]), codec=doc["codec"], raw_size=int(doc["raw_size"]),
            type_name=str(doc["type"]), dtype=doc.get("dtype"),
            shape=tuple(int(n) for n in doc["shape"]) if "shape" in doc else None,
            order=doc.get("order"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptArtifact(f"unreadable artifact header: {exc}") from exc
    if header.kind not in KINDS or header.codec not in (None, "zstd"):
        raise CorruptArtifact(f"unknown artifact encoding {header.encoding!r}; "
                              "was it written by a newer kflow?")
    return header, end


def empty_ndarray(header: Header) -> tuple[Any, memoryview]:
    """A new uninitialized array for an ndarray header, and a writable byte view of it."""
    import numpy as np

    array = np.empty(header.shape or (), dtype=np.dtype(header.dtype),
                     order="F" if header.order == "F" else "C")
    return array, memoryview(cast(Any, array.ravel(order="K").view(np.uint8)))


def decompress_into(payload: Buffer, out: memoryview) -> None:
    """Decompress a zstd `payload` into `out`, which must be exactly the raw size."""
    import zstandard

    filled = 0
    with zstandard.ZstdDecompressor().stream_reader(payload) as reader:
        while filled < out.nbytes:
            n = reader.readinto(out[filled:])
            if not n:
                break
            filled += n
        extra = reader.read(1)
    if filled != out.nbytes or extra:
        raise CorruptArtifact("compressed payload does not match its recorded size")


def _raw_payload(header: Header, payload: Buffer) -> Buffer:
    if header.codec is None:
        return payload
    import zstandard

    try:
        raw = zstandard.ZstdDecompressor().decompress(payload, max_output_size=header.raw_size)
    except zstandard.ZstdError as exc:
        raise CorruptArtifact(f"cannot decompress artifact: {exc}") from exc
    return raw


def decode_payload(header: Header, payload: Buffer) -> object:
    """The value of a blob given its parsed header and payload (a new, aligned
    array for numpy payloads: the blob's buffer is not kept alive)."""
    view = memoryview(payload)
    if header.kind == "ndarray":
        array, out = empty_ndarray(header)
        if header.codec:
            decompress_into(view, out)
        elif view.nbytes != out.nbytes:
            raise CorruptArtifact("array payload does not match its shape and dtype")
        else:
            out[:] = view
        return array
    raw = _raw_payload(header, view)
    if header.kind == "bytes":
        return bytes(raw)
    if header.kind == "str":
        return bytes(raw).decode("utf-8", "surrogatepass")
    import pickle

    return pickle.loads(raw)


def decode(data: Buffer) -> object:
    """The value of a whole stored blob."""
    parsed = parse_header(data)
    if isinstance(parsed, int):
        raise CorruptArtifact("stored artifact is truncated (incomplete header)")
    header, start = parsed
    return decode_payload(header, memoryview(data)[start:])
