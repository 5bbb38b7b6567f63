"""Argument helpers shared by the ``bge-vdb`` sub-commands: types that refuse bad values at parse
time, JSON/filter arguments checked before any work, the progress bar, ``--json`` output."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from .errors import InputError


def print_json(data: Any) -> None:
    """Machine-readable output of every ``--json`` flag: UTF-8 as is, indented."""
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def positive_int(text: str) -> int:
    """argparse type of counts (``-k``, ``--batch-size``, ``--workers``): refused at parse time."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


@contextlib.contextmanager
def progress_bar(**kwargs: Any) -> Iterator[Any]:
    """A tqdm bar on stderr; while it is shown, log lines (a truncation warning) are printed
    above it instead of into the middle of its line."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(), tqdm(file=sys.stderr, **kwargs) as bar:
        yield bar


def add_precision(p: Any) -> None:
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto",
                   help="auto: bf16 autocast on CPUs that have it (torch); int8: opt-in ONNX model")


def json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON ({exc.msg}): {text!r}") from None


def filter_arg(text: str | None, what: str) -> Any:
    """A JSON filter argument, parsed and checked (FilterError names the flag) before any work."""
    from . import filters

    value = json_arg(text, what)
    try:
        filters.parse(value)
    except InputError as exc:
        raise type(exc)(f"{what}: {exc}") from None
    return value
