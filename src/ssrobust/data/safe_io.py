"""Readers that never run code from a data file.

* CIFAR python batches are pickles. :func:`load_cifar_pickle` unpickles them with a restricted
  unpickler that resolves only the few globals the official files use (numpy array and dtype
  reconstruction, and the latin-1 bytes encoding of protocol-2 pickles); any other global (``os.system``,
  ``builtins.eval``, a class with a malicious ``__reduce__``) is refused before it can be called, and
  the result must consist of dicts, lists, tuples, bytes/str, numbers and non-object numpy arrays.
* ``.npy`` / ``.npz`` files are read with ``allow_pickle=False`` after checking their magic bytes,
  so a garbage file is described as what it is, not as "pickled data".

Every failure is a one-line :class:`~ssrobust.errors.DataError` naming the file.
"""

from __future__ import annotations

import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip (what np.load accepts)
_LEAF_TYPES = (bytes, str, int, float, complex, bool, type(None))


class _Refused(pickle.UnpicklingError):
    """A pickle asked for something a CIFAR batch never contains."""


def _plain_dtype(dtype: Any) -> bool:
    """Numbers, bools and fixed-width bytes/str: no Python objects, no fields, no sub-arrays."""
    return (isinstance(dtype, np.dtype) and dtype.kind in "biufcSU" and not dtype.hasobject
            and dtype.fields is None and dtype.subdtype is None)


def _safe_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if not _plain_dtype(dtype):  # object arrays would hold arbitrary Python objects
        raise _Refused(f"numpy dtype {dtype} (only plain numeric, bool, bytes or str dtypes)")
    return dtype


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` in a pickle: valid only as ``_reconstruct``'s subtype, never called."""

    def __call__(self, *args: Any) -> None:
        raise _Refused("numpy.ndarray called directly")


_NDARRAY = _NdarrayToken()


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    if subtype is not _NDARRAY:  # a subclass could run code in __array_finalize__ / __setstate__
        raise _Refused(f"array subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, _safe_dtype(typecode))


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:  # protocol 5 arrays
    if not isinstance(buf, (bytes, bytearray)) or not _plain_dtype(dtype):
        raise _Refused("numpy _frombuffer with arguments other than bytes and a plain dtype")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _scalar(dtype: Any, data: Any = None) -> np.generic:
    if not _plain_dtype(dtype) or not isinstance(data, bytes):
        raise _Refused("numpy scalar of a non-plain dtype or without raw bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1_encode(obj: Any, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1").
    if not isinstance(obj, str) or encoding.lower().replace("-", "") != "latin1":
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return obj.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    if args:  # protocol 2 pickles b"" as builtins.bytes(); bytes(n) would allocate n bytes
        raise _Refused("builtins.bytes with arguments")
    return b""


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
}
for _core in ("numpy.core", "numpy._core"):  # numpy 1 wrote numpy.core, numpy 2 writes numpy._core
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _scalar
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _frombuffer


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise _Refused(f"global {module}.{name}")
        return found


def _check_plain(obj: Any) -> None:
    """Raise :class:`_Refused` unless ``obj`` is built only of plain containers, leaves and arrays."""
    stack, seen = [obj], set()
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple, dict, set, frozenset)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            stack.extend(list(item.keys()) + list(item.values()) if isinstance(item, dict) else item)
        elif isinstance(item, (np.ndarray, np.generic)):
            if not _plain_dtype(item.dtype):  # also catches a dtype altered by its pickled state
                raise _Refused(f"numpy {type(item).__name__} of dtype {item.dtype}")
        elif not isinstance(item, _LEAF_TYPES):
            raise _Refused(f"object of type {type(item).__name__}")


def load_cifar_pickle(path: Path) -> Any:
    """Unpickle a CIFAR python batch without running code from it.

    Accepts what the official files hold (dicts with bytes or str keys, lists of ints and bytes
    filenames, uint8 arrays) in any protocol, written by Python 2 or 3 and numpy 1 or 2.
    Raises :class:`DataError` naming ``path`` for anything else or a truncated file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()
        _check_plain(obj)
    except _Refused as e:
        raise DataError(f"{path}: refused to unpickle {e}: a CIFAR batch holds only dicts, lists, "
                        f"bytes/str, numbers and numpy arrays (code in data files is never run)") from None
    except Exception as e:  # truncated or foreign file: say which one
        raise DataError(f"{path}: cannot read as a CIFAR python pickle ({_one_line(e)})") from None
    return obj


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _magic(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise DataError(f"{path}: cannot open ({_one_line(e)})") from None


def load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array read into memory with ``allow_pickle=False``; errors name ``path``."""
    path = Path(path)
    if _magic(path, len(NPY_MAGIC)) != NPY_MAGIC:
        raise DataError(f"{path}: not a .npy file (no NUMPY header); expected a file written by numpy.save")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataError(f"{path}: holds Python objects (an object array); expected a numeric "
                            f"array (pickled data is never loaded)") from None
        raise DataError(f"{path}: corrupt or truncated .npy file ({_one_line(e)})") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: corrupt or truncated .npy file ({_one_line(e)})") from None


def open_npz(path: Path) -> Any:
    """An open ``np.load(path, allow_pickle=False)`` archive (use as a context manager)."""
    path = Path(path)
    if _magic(path, 4) not in ZIP_MAGICS:
        raise DataError(f"{path}: not a .npz archive (no zip header); expected a file written by "
                        f"numpy.savez or numpy.savez_compressed")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: corrupt or truncated .npz archive ({_one_line(e)})") from None


def npz_member(archive: Any, key: str, path: Path) -> np.ndarray:
    """``archive[key]`` as an array; an object array or a damaged member is a :class:`DataError`."""
    try:
        return archive[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataError(f"{path}: key {key} holds Python objects (an object array); expected a "
                            f"numeric array (pickled data is never loaded)") from None
        raise DataError(f"{path}: key {key} is corrupt ({_one_line(e)})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: key {key} is corrupt or truncated ({_one_line(e)})") from None
