"""How the CLI words a failure: the innermost cause, not the wrapper's retry advice."""

from __future__ import annotations

from jobs.cli import root_cause


class Wrapper(Exception):
    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.cause = cause


def test_root_cause_walks_ray_style_and_python_chains() -> None:
    original = RuntimeError("planted failure 42")
    try:
        try:
            raise original
        except RuntimeError as err:
            raise ValueError("UDF failed to process a data block.\nTo change retry attempts...") from err
    except ValueError as udf:
        wrapped = Wrapper("ray::MapBatches() failed\n  File ...", udf)
    assert root_cause(wrapped) == "RuntimeError: planted failure 42"


def test_root_cause_of_a_plain_error() -> None:
    assert root_cause(FileNotFoundError("no such file: x")) == "FileNotFoundError: no such file: x"
