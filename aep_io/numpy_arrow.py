"""numpy <-> Arrow for primitive arrays, without pyarrow's pandas probe.

``pa.array(ndarray)``, ``Array.to_numpy()`` and ``pc.take(arr, ndarray)`` first ask pyarrow's
pandas shim whether the input is a pandas object, and that shim imports pandas (~0.2 s) in any
process where pandas is installed, even one that never uses it. The flattening code converts
offsets, masks and indices for every batch; these helpers build the same zero-copy views from
the buffers directly, so a read that flattens membership does not pay for pandas. Python
scalars passed to compute functions (``pc.equal(arr, "ups")``, ``fill_null(arr, False)``)
go through the same probe: :func:`string_scalar` and :func:`not_null` avoid it.

Example:
    >>> import numpy as np
    >>> from_numpy(np.array([1, 2, 3]), mask=np.array([False, True, False])).to_pylist()
    [1, None, 3]
    >>> to_numpy(from_numpy(np.array([True, False, True]))).tolist()
    [True, False, True]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["from_numpy", "not_null", "string_scalar", "strings", "to_numpy"]

_DTYPES: dict[pa.DataType, np.dtype] = {
    t: np.dtype(n)
    for t, n in [
        (pa.int8(), "int8"), (pa.int16(), "int16"), (pa.int32(), "int32"),
        (pa.int64(), "int64"), (pa.uint8(), "uint8"), (pa.uint16(), "uint16"),
        (pa.uint32(), "uint32"), (pa.uint64(), "uint64"), (pa.float32(), "float32"),
        (pa.float64(), "float64"),
    ]
}  # fmt: skip
_TYPES: dict[np.dtype, pa.DataType] = {d: t for t, d in _DTYPES.items()}


def to_numpy(arr: pa.Array) -> np.ndarray:
    """The values of a primitive (integer, float or boolean) array as numpy; zero-copy except
    for booleans (unpacked from bits). Null slots hold whatever their buffer holds: use it on
    arrays without nulls (fill them first)."""
    n = len(arr)
    buffers = arr.buffers()
    data = buffers[1] if len(buffers) > 1 else None
    if pa.types.is_boolean(arr.type):
        if data is None or n == 0:
            return np.zeros(n, dtype=bool)
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little",
                             count=arr.offset + n)  # fmt: skip
        return bits[arr.offset :].view(np.bool_)
    dtype = _DTYPES.get(arr.type)
    if dtype is None:
        raise TypeError(f"to_numpy: {arr.type} is not a primitive integer, float or bool type")
    if data is None or n == 0:
        return np.zeros(n, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=n, offset=arr.offset * dtype.itemsize)


def from_numpy(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A primitive Arrow array over ``values`` (zero-copy for numbers), null where ``mask``."""
    values = np.ascontiguousarray(values)
    n = len(values)
    validity = None
    null_count = 0
    if mask is not None:
        null_count = int(np.count_nonzero(mask))
        if null_count:
            validity = pa.py_buffer(np.packbits(~np.asarray(mask, dtype=bool),
                                                bitorder="little"))  # fmt: skip
    if values.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), n, [validity, data], null_count=null_count)
    arrow_type = _TYPES.get(values.dtype)
    if arrow_type is None:
        raise TypeError(f"from_numpy: {values.dtype} is not a primitive integer or float dtype")
    return pa.Array.from_buffers(arrow_type, n, [validity, pa.py_buffer(values)],
                                 null_count=null_count)  # fmt: skip


def strings(values: list[str]) -> pa.Array:
    """A string array of ``values`` (no nulls)."""
    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def string_scalar(value: str) -> pa.Scalar:
    """``value`` as an Arrow string scalar, for compute functions."""
    return strings([value])[0]


def not_null(mask: pa.Array) -> pa.Array:
    """A boolean array with its nulls as False (``fill_null(mask, False)``)."""
    return pc.and_kleene(mask, pc.is_valid(mask))
