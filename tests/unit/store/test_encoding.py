"""Serialization round trips, fast paths, compression decision, pickling errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest

from kflow.store import UnpicklableArtifact, decode, encode
from kflow.store.encoding import (
    COMPRESS_MIN_RATIO,
    PROBE_BYTES,
    Header,
    parse_header,
    worth_compressing,
)


def roundtrip(value: object) -> Any:
    encoded = encode(value)
    blob = b"".join(bytes(memoryview(b)) for b in encoded.buffers)
    assert len(blob) == encoded.size
    return decode(blob)


@pytest.mark.parametrize("value", [b"", b"abc" * 1000, os.urandom(5000)])
def test_bytes_round_trip(value: bytes) -> None:
    assert roundtrip(value) == value
    assert encode(value).header.kind == "bytes"


@pytest.mark.parametrize("value", ["", "héllo wörld ✓", "x" * 10_000, "\ud800 lone surrogate"])
def test_str_round_trip(value: str) -> None:
    out = roundtrip(value)
    assert out == value and type(out) is str
    assert encode(value).header.kind == "str"


ARRAYS = {
    "float64 2d": np.arange(12.0).reshape(3, 4),
    "int8": np.arange(-50, 50, dtype=np.int8),
    "fortran": np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4)),
    "non-contiguous": np.arange(100.0).reshape(10, 10)[::2, 1::3],
    "transposed view": np.arange(20).reshape(4, 5).T,
    "0-d": np.array(3.5),
    "empty": np.empty((0, 3)),
    "bool": np.array([True, False, True]),
    "complex": np.array([1 + 2j, 3 - 4j]),
    "datetime": np.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]"),
    "big-endian": np.arange(5, dtype=">i4"),
    "unicode": np.array(["a", "bcd"]),
    "random large": np.random.default_rng(0).random(300_000),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_ndarray_round_trip(name: str) -> None:
    array = ARRAYS[name]
    encoded = encode(array)
    assert encoded.header.kind == "ndarray"
    out = roundtrip(array)
    assert type(out) is np.ndarray
    assert out.dtype == array.dtype and out.shape == array.shape
    assert np.array_equal(out, array)
    assert out.flags.writeable and out.flags.aligned


def test_fortran_order_is_kept_without_copy() -> None:
    array = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    encoded = encode(array, compress=False)
    assert encoded.header.order == "F"
    payload = np.frombuffer(encoded.payload, dtype=array.dtype)
    assert np.shares_memory(payload, array)  # no pickling copy
    assert roundtrip(array).flags.f_contiguous


def test_contiguous_array_payload_is_a_view() -> None:
    array = np.random.default_rng(1).random(1000)
    encoded = encode(array)
    assert encoded.header.codec is None  # random floats do not compress
    assert np.shares_memory(np.frombuffer(encoded.payload, dtype=array.dtype), array)


def test_object_and_structured_arrays_fall_back_to_pickle() -> None:
    objects = np.array([1, "a", None], dtype=object)
    assert encode(objects).header.kind == "pickle"
    assert list(roundtrip(objects)) == [1, "a", None]
    structured = np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    assert encode(structured).header.kind == "pickle"
    assert roundtrip(structured)["b"][0] == 2.0
    masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    assert encode(masked).header.kind == "pickle"  # a subclass keeps its type


def test_pickled_values_round_trip() -> None:
    value = {"a": [1, 2, {"b": (3, 4.5)}], "c": None, "s": {1, 2}}
    assert roundtrip(value) == value
    assert roundtrip(bytearray(b"xy")) == bytearray(b"xy")
    offset = 10
    assert roundtrip(lambda x: x + offset)(5) == 15  # cloudpickle: lambdas and closures


def test_type_name_and_encoding_label() -> None:
    assert encode({"a": 1}).type_name == "dict"
    assert encode(np.zeros(3)).type_name == "numpy.ndarray"
    assert encode(b"a" * 10_000).encoding == "bytes+zstd"
    assert encode(os.urandom(10_000)).encoding == "bytes"


def test_compression_only_when_it_pays() -> None:
    assert encode(b"\0" * 100_000).header.codec == "zstd"
    assert encode(os.urandom(100_000)).header.codec is None
    assert encode(b"abc").header.codec is None  # tiny: zstd's frame would not pay
    compressible = encode(b"abcdefgh" * 100_000)
    assert compressible.size < 0.1 * compressible.header.raw_size


def test_large_payload_decision_uses_a_probe_of_the_start() -> None:
    # Random first MiB, zeros after: the probe says "incompressible", stored raw.
    mixed = os.urandom(PROBE_BYTES) + b"\0" * PROBE_BYTES
    assert encode(mixed).header.codec is None
    # Zeros first: compressed (and the whole result is checked too).
    assert encode(b"\0" * (3 * PROBE_BYTES)).header.codec == "zstd"
    assert roundtrip(mixed) == mixed


def test_worth_compressing_threshold() -> None:
    assert worth_compressing(b"x" * 100, b"x" * int(100 * COMPRESS_MIN_RATIO))
    assert not worth_compressing(b"x" * 100, b"x" * 91)
    assert not worth_compressing(b"", b"")


def test_unpicklable_names_artifact_and_type() -> None:
    with pytest.raises(UnpicklableArtifact) as info:
        encode(threading.Lock(), name="my_lock")
    message = str(info.value)
    assert "'my_lock'" in message and "_thread.lock" in message
    assert info.value.name == "my_lock"
    assert isinstance(info.value.__cause__, TypeError)


def test_header_parsing() -> None:
    encoded = encode(np.zeros((2, 3), dtype=np.float32))
    assert parse_header(encoded.prefix[:5]) == 8  # needs the fixed part first
    parsed = parse_header(encoded.prefix)
    assert isinstance(parsed, tuple)
    header, start = parsed
    assert start == len(encoded.prefix)
    assert header == Header("ndarray", header.codec, 24, "numpy.ndarray", "<f4", (2, 3), "C")


def test_numpy_is_not_imported_for_other_values() -> None:
    code = (
        "import sys, kflow.store as s\n"
        "for v in (b'x', 'y', {'a': 1}, [1.5]):\n"
        "    assert s.decode(b''.join(bytes(b) for b in s.encode(v).buffers)) == v\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
