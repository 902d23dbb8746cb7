"""Model files from the lake are data, never code: refuse a pickle before anything reads it.

Anyone who can write to the lake's ``models/`` folder could otherwise run code in every
worker that loads a model: unpickling (``pickle.load``, ``joblib.load``,
``np.load(allow_pickle=True)``) calls whatever the file names. So no kind saves a
pickle, and every kind's ``load`` first calls :func:`refuse_unsafe_files` on its folder,
which accepts only the formats the pipeline writes, recognised by their first bytes:

* JSON (parameters, metadata) - plain text, parsed with :mod:`json`;
* zip: ``.npz`` (read with ``allow_pickle=False``), ``.keras`` (read with
  ``safe_mode=True``) and ``.skops`` (read with an explicit list of trusted types,
  :data:`cva_tasks.models.churn.model.TRUSTED_TYPES`);
* Parquet and ``.npy`` (no object arrays).

Anything else is refused with :class:`UntrustedModelFile` before any byte of the
folder is deserialised; a pickle (any protocol, or joblib's compressed forms) is named
as such. Models saved with joblib by older versions of the pipeline are refused the
same way: they are retrained once (see ``docs/what-can-go-wrong/trust-security.md``).
"""

from __future__ import annotations

import pickle
import pickletools
from pathlib import Path

#: Suffixes of pickle files (joblib's, numpy's object arrays are ``.npy`` with pickle inside
#: and are caught by ``allow_pickle=False`` instead).
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".jbl", ".sav", ".pk", ".p", ".dill"})

_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_PARQUET = b"PAR1"
_NPY = b"\x93NUMPY"
#: Compressed streams joblib writes (zlib, gzip, bz2, xz, lzma, lz4): a pickle inside.
_COMPRESSED = (
    b"\x78\x01",
    b"\x78\x5e",
    b"\x78\x9c",
    b"\x78\xda",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"\x5d\x00\x00",
    b"\x04\x22\x4d\x18",
)
_SNIFF_BYTES = 64
_MAX_PARSED_BYTES = 64 * 1024 * 1024


class UntrustedModelFile(ValueError):
    """A model folder holds a file the pipeline would not write (a pickle, most likely).

    Loading it could run code, so nothing in the folder is loaded. Recover by
    retraining the kind (the message says how).
    """


def _looks_like_pickle(head: bytes) -> bool:
    if head[:1] == pickle.PROTO and len(head) > 1 and head[1] <= pickle.HIGHEST_PROTOCOL:
        return True
    return head.startswith(_COMPRESSED)


def file_format(path: Path) -> str:
    """``json``, ``zip``, ``parquet`` or ``npy`` (safe to read); ``pickle`` or ``unknown``."""
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES)
    if path.suffix.lower() in PICKLE_SUFFIXES or _looks_like_pickle(head):
        return "pickle"
    if head.startswith(_ZIP):
        return "zip"
    if head.startswith(_PARQUET):
        return "parquet"
    if head.startswith(_NPY):
        return "npy"
    # JSON documents the pipeline writes are objects or arrays; neither ``{`` nor ``[``
    # is a pickle opcode, so a protocol-0 pickle cannot pass as JSON.
    if head.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] in (b"{", b"["):
        return "json"
    return "pickle" if _is_text_pickle(path) else "unknown"


def _is_text_pickle(path: Path) -> bool:
    """Whether ``path`` parses whole as pickle opcodes (protocols 0 and 1 have no header).

    :func:`pickletools.genops` only decodes the opcodes; it runs nothing.
    """
    if path.stat().st_size > _MAX_PARSED_BYTES:
        return False
    try:
        opcodes = [opcode.name for opcode, _arg, _pos in pickletools.genops(path.read_bytes())]
    except (ValueError, UnicodeDecodeError, EOFError):
        return False
    return bool(opcodes) and opcodes[-1] == "STOP"


def refuse_unsafe_files(directory: Path, kind: str) -> Path:
    """Raise :class:`UntrustedModelFile` if any file under ``directory`` is not a safe format.

    Reads only the first bytes of each file: nothing is deserialised.
    Returns ``directory`` (as a Path), so a loader can check and bind it in one step.

    Args:
        directory: A saved model's folder.
        kind: The model kind (for the message).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return directory  # the kind's own loader says the model is missing
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if any(part.startswith((".", "_")) for part in path.relative_to(directory).parts):
            continue  # hidden: never read by a loader (leftovers of a swap: cva lake check)
        found = file_format(path)
        if found not in ("pickle", "unknown"):
            continue
        what = (
            "a pickle (joblib) file"
            if found == "pickle"
            else "in no format the pipeline writes (JSON, npz, keras, skops, parquet)"
        )
        raise UntrustedModelFile(
            f"{kind} model file {path} is {what}: refused, nothing in {directory} was "
            "loaded (loading a pickle runs any code it holds, and this pipeline never "
            "writes one). If an older version of the pipeline saved it, or someone "
            f"planted it, retrain: clear the train_{kind} task of the day the model was "
            f"trained (airflow tasks clear cva_customer_value -t train_{kind} -s DAY -e DAY), "
            f"which writes the version anew; or delete {directory} so the previous "
            "champion is used."
        )
    return directory
