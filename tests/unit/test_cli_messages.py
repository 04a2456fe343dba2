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


def test_root_cause_reads_the_operator_error_out_of_ray_datas_wrapper() -> None:
    class UserCodeException(Exception):
        pass

    udf = UserCodeException("UDF failed to process a data block.\nFailed to apply UDF transform")
    text = ("ray::MapBatches(_map_files)() (pid=1)\n  File \"op.py\", line 9, in __call__\n"
            "    raise RuntimeError(self.config.message)\nRuntimeError: planted failure 42\n\n"
            "The above exception was the direct cause of the following exception:\n"
            "ray.exceptions.UserCodeException: UDF failed to process a data block.")
    assert root_cause(Wrapper(text, udf)) == "RuntimeError: planted failure 42"


def test_root_cause_names_the_input_file_a_read_error_noted() -> None:
    import pyarrow as pa

    err = pa.ArrowInvalid("Invalid UTF8 payload")
    err.add_note("input file: s3://corpus/part-7.parquet")
    assert root_cause(err) == "ArrowInvalid: Invalid UTF8 payload (input file: s3://corpus/part-7.parquet)"
    # as Ray Data passes it on: the remote traceback's text, notes included
    text = ("ray::MapBatches(_read_input_files)() (pid=1)\npyarrow.lib.ArrowInvalid: Invalid UTF8 payload\n"
            "input file: /data/a.parquet\ntamis stage: read\n")
    assert root_cause(Wrapper(text, type("UserCodeException", (Exception,), {})("UDF failed"))) \
        == "ArrowInvalid: Invalid UTF8 payload (input file: /data/a.parquet)"
