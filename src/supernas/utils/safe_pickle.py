"""Reading pickles that other programs wrote, without running code from them.

A pickle is a program: each global it names is imported and called. `read_restricted` runs that
program with an allowlist: a global is looked up in the table the caller gives, whose entries
are stand-ins written here (plain records, numpy's array and dtype constructors wrapped so they
take data only), never the class the file names. Anything else the file names is refused before
it is called. The records keep what the file stored (`Record.state`) for the caller to check and
turn into its own objects.

It also reads joblib's format (``joblib.dump``: arrays written raw after their pickled header,
optionally zlib/gzip/bz2/xz compressed) without importing joblib. Python's own pure-Python
unpickler does the opcode work; only the lookup of globals and the BUILD step are replaced.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import pickle
import zlib
from pathlib import Path
from typing import IO, Any, Callable, Mapping

import numpy as np

from ..errors import SupernasError

# What a decompressed file may grow to: far above any predictor or CIFAR batch, far below a bomb.
MAX_DECOMPRESSED_BYTES = 1 << 31


class Refused(Exception):
    """The pickle names something outside the allowlist, or is malformed in a way that matters."""


class Record:
    """What a pickled object of an allowed class held: its constructor arguments and its state."""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default) if isinstance(self.state, dict) else default


def record_class(name: str) -> type:
    """A Record subclass that remembers which class the file named (for error messages)."""
    return type(name, (Record,), {})


class _JoblibArray(Record):
    """joblib's NumpyArrayWrapper: the array's header; its bytes follow in the stream."""


# ---- numpy, data only ------------------------------------------------------------------------

def _dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    if not isinstance(spec, str):
        raise Refused(f"a numpy dtype built from a {type(spec).__name__}")
    return np.dtype(spec, bool(align), bool(copy))


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # numpy pickles an array as an empty one and its state; the shape comes with the state.
    if subtype is not np.ndarray:
        raise Refused("an array of a class other than numpy.ndarray")
    return np.empty(0, dtype=_dtype(dtype) if isinstance(dtype, (str, bytes)) else np.uint8)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise Refused("an array from a buffer of objects")
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order="F" if order == "F" else "C").copy()


def _scalar(dtype: Any, data: Any) -> Any:
    if not isinstance(dtype, np.dtype):
        raise Refused("a numpy scalar without a dtype")
    if dtype.hasobject:
        return data
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused("a codecs call other than latin1 encoding of a string")
    return text.encode("latin1")


def _ordered_dict(*args: Any) -> dict:
    return dict(*args)


NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,   # only ever the first argument of _reconstruct, never called
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _codecs_encode,
    ("collections", "OrderedDict"): _ordered_dict,
}
JOBLIB_GLOBALS: dict[tuple[str, str], Any] = {("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArray}


def _canonical(module: str) -> str:
    # numpy 2 moved numpy.core to numpy._core; files from either side name the same functions.
    return "numpy._core" + module[len("numpy.core"):] if module.startswith("numpy.core") else module


# ---- the unpickler ---------------------------------------------------------------------------

class _RestrictedUnpickler(pickle._Unpickler):
    stack: list[Any]  # pickle's working stack (undocumented, absent from typeshed)

    def __init__(self, file: IO[bytes], allowed: Mapping[tuple[str, str], Any], encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._allowed = allowed
        self._file = file
        dispatch: dict[int, Callable[[Any], None]] = dict(pickle._Unpickler.dispatch)
        # typeshed declares dispatch a ClassVar; this instance gets a copy of its own, pickle's stays intact
        self.dispatch = dispatch  # type: ignore[misc]
        dispatch[pickle.BUILD[0]] = _RestrictedUnpickler._build

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((_canonical(module), name))
        if found is None:
            raise Refused(f"it names {module}.{name}, which is not allowed here")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise Refused("it refers to objects stored outside the file")

    def _build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        # Only data objects take a state: a class or function given one would be altered for good.
        if isinstance(inst, Record):
            inst.__setstate__(state)
        elif type(inst) is np.ndarray or isinstance(inst, np.dtype):
            inst.__setstate__(state)  # type: ignore[union-attr]  # numpy's stubs omit dtype.__setstate__
        else:
            raise Refused(f"it sets the state of a {type(inst).__name__}")
        if isinstance(inst, _JoblibArray):
            self.stack[-1] = _read_joblib_array(inst, self._file, self._allowed)


def _read_joblib_array(wrapper: _JoblibArray, file: IO[bytes], allowed: Mapping[tuple[str, str], Any]) -> Any:
    """The bytes joblib wrote right after an array's header (its `write_array`)."""
    dtype, shape, order = wrapper.get("dtype"), wrapper.get("shape"), wrapper.get("order", "C")
    if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple) \
            or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise Refused("a joblib array header without a dtype and shape")
    if wrapper.get("numpy_array_alignment_bytes") is not None:
        pad = file.read(1)
        if len(pad) != 1 or len(file.read(pad[0])) != pad[0]:
            raise Refused("the file ends inside an array's padding")
    if dtype.hasobject:  # joblib pickles object arrays whole, after the header
        return _RestrictedUnpickler(file, allowed, "ASCII").load()
    count = math.prod(shape)
    want = count * dtype.itemsize
    data = file.read(want)
    if len(data) != want:
        raise Refused(f"the file ends inside an array ({len(data)} of {want} bytes)")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if order == "F" else "C").copy()


# ---- public ----------------------------------------------------------------------------------

def read_restricted(path: "str | Path", allowed: Mapping[tuple[str, str], Any], what: str,
                    encoding: str = "ASCII") -> Any:
    """The object pickled (by pickle or joblib, plain or compressed) in `path`, built only from
    the globals in `allowed` ((module, name) -> stand-in). `what` names the kind of file in
    errors: '{path}' is not {what} (...)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except IsADirectoryError:
        raise SupernasError(f"'{path}' is a directory, not {what}") from None
    except OSError as e:
        raise SupernasError(f"cannot read '{path}': {e.strerror or e}") from None
    try:
        data = _decompressed(raw)
        if not data.startswith(b"\x80"):
            raise Refused("it is not a pickle (no pickle header)")
        return _RestrictedUnpickler(io.BytesIO(data), allowed, encoding).load()
    except Refused as e:
        raise SupernasError(f"'{path}' is not {what}: {e}; nothing in it was run") from None
    except RecursionError:
        raise SupernasError(f"'{path}' is not {what}: it nests too deeply") from None
    except MemoryError:
        raise SupernasError(f"'{path}' is not {what}: it asks for more memory than this machine has") from None
    except Exception as e:  # truncated or corrupt: any failure of the opcodes means the file is not ours
        raise SupernasError(f"'{path}' is not {what} (unreadable pickle: {type(e).__name__}: {e})") from None


def _decompressed(raw: bytes) -> bytes:
    """joblib's compressed files (by magic number), bounded so that a small file cannot fill memory."""
    opener: "Callable[[IO[bytes]], io.BufferedIOBase] | None" = None
    if raw[:2] == b"\x1f\x8b":
        opener = lambda f: gzip.GzipFile(fileobj=f)  # noqa: E731
    elif raw[:3] == b"BZh":
        opener = lambda f: bz2.BZ2File(f)  # noqa: E731
    elif raw[:6] == b"\xfd7zXZ\x00":
        opener = lambda f: lzma.LZMAFile(f)  # noqa: E731
    elif raw[:7] == b"ZF\x00\x00\x00\x00\x00" or (
            len(raw) > 1 and raw[0] == 0x78 and (raw[0] * 256 + raw[1]) % 31 == 0):  # a zlib header
        return _inflate(raw[7:] if raw[:2] == b"ZF" else raw)
    if opener is None:
        return raw
    with opener(io.BytesIO(raw)) as f:
        out = f.read(MAX_DECOMPRESSED_BYTES + 1)
    if len(out) > MAX_DECOMPRESSED_BYTES:
        raise Refused(f"it decompresses to more than {MAX_DECOMPRESSED_BYTES >> 30} GiB")
    return out


def _inflate(raw: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(raw, MAX_DECOMPRESSED_BYTES + 1)
    if len(out) > MAX_DECOMPRESSED_BYTES:
        raise Refused(f"it decompresses to more than {MAX_DECOMPRESSED_BYTES >> 30} GiB")
    return out
