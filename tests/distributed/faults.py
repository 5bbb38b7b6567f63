"""A fault for the crash test: an Embedder whose worker process dies (``os._exit``) once.

Built inside each Ray actor from a picklable factory (``functools.partial`` of this class), like any
model spec. The marker file is shared by every actor, so exactly one process dies, once, at its
``after``-th embedding call: mid-run, while that actor's writer thread may still be writing the
previous batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bge_vdb.embedder import Embedder


class DieOnceEmbedder(Embedder):
    def __init__(self, model: str, *, marker: str, after: int, **options: Any) -> None:
        super().__init__(model, **options)
        self._marker = Path(marker)
        self._after = after
        self._calls = 0

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self._calls += 1
        if self._calls >= self._after:
            try:
                fd = os.open(self._marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass  # someone already died: behave
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os._exit(1)  # as a kill would: no cleanup, no exception
        return super().embed_documents(texts)
