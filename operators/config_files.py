"""Files a config names and validation reads (a mix's ``weights_file``): a local path, or a
URI that jobs/ reads for it.

Operators touch no network (no boto3 or fsspec here): while jobs/ validates a pipeline it
lends a reader for URIs (:func:`uri_reader`), which reads through its store layer with the
pipeline's S3 options. Validation happens on the driver (and again in the scheduler);
workers get configs already validated, so they never read the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

_readers: list[Callable[[str], bytes]] = []


@contextlib.contextmanager
def uri_reader(read: Callable[[str], bytes]) -> Iterator[None]:
    """Within the block, :func:`read_config_file` reads URIs with ``read``."""
    _readers.append(read)
    try:
        yield
    finally:
        _readers.pop()


def is_uri(path: str) -> bool:
    return "://" in path


def read_config_file(path: str) -> bytes:
    """The bytes of the file at ``path`` (local, ``~`` expanded) or at a URI.

    Raises:
        OSError: the file cannot be read (its message says why).
    """
    if is_uri(path):
        if not _readers:
            raise OSError(f"{path}: a URI is read only while tamis validates a pipeline (tamis run or validate)")
        return _readers[-1](path)
    return Path(path).expanduser().read_bytes()
