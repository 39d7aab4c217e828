"""A restricted unpickler for data files (pyskl annotations, NW-UCLA label lists).

A pickle can name any importable callable and have it called while loading, so an untrusted ``.pkl`` could run
code. :class:`RestrictedUnpickler` resolves only the few globals needed to rebuild numpy arrays, dtypes and scalars
(plus a handful of inert builtin containers); every other global is refused before anything is called. Plain
containers, strings and numbers (the pickle opcodes of protocol 2 and newer) need no global and always load.
"""

from __future__ import annotations

import codecs
import io
import pickle
from os import PathLike
from typing import Any

import numpy as np

try:
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

from .sample import SkeletonFileError

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "safe_load", "safe_loads"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global outside the allow-list."""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as used by protocol-2 pickles for ``bytes`` payloads, limited to latin-1."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}; only latin-1 is allowed")
    return text.encode("latin-1")


_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("_codecs", "encode"): _latin1_encode,
}

_BUILTIN_GLOBALS: dict[tuple[str, str], Any] = {
    (module, name): obj
    for module in ("builtins", "__builtin__")
    for name, obj in (("set", set), ("frozenset", frozenset), ("bytearray", bytearray), ("complex", complex))
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only allow-listed globals.

    Args:
        file: binary file object to read the pickle from.
        allow_numpy: allow numpy arrays, dtypes and scalars; with ``False`` every global is refused, so only
            builtin containers, strings and numbers load.
    """

    def __init__(self, file: io.BufferedIOBase, *, allow_numpy: bool = True) -> None:
        super().__init__(file)
        self._allowed = {**_BUILTIN_GLOBALS, **_NUMPY_GLOBALS} if allow_numpy else {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            what = "numpy arrays and builtin containers" if self._allowed else "builtin containers and numbers"
            raise UnsafePickleError(f"refusing to load global {module}.{name}: only {what} are allowed") from None


def safe_loads(data: bytes, *, allow_numpy: bool = True) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; raises :class:`UnsafePickleError` on refused globals."""
    return RestrictedUnpickler(io.BytesIO(data), allow_numpy=allow_numpy).load()


def safe_load(path: str | PathLike, *, allow_numpy: bool = True) -> Any:
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler`.

    Raises:
        FileNotFoundError: the file does not exist.
        SkeletonFileError: the pickle is refused (disallowed global) or malformed; the message names the file.
    """
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, allow_numpy=allow_numpy).load()
        except UnsafePickleError as err:
            raise SkeletonFileError(path, f"unsafe pickle: {err}") from err
        except Exception as err:  # whatever unpickling malformed bytes raises (the allowed globals included)
            raise SkeletonFileError(path, f"malformed pickle ({type(err).__name__}: {err})") from err
