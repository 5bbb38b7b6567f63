"""Griffe extension: Sphinx cross-reference roles in docstrings become inline code.

bge-vdb's docstrings are Google style and some name other objects the Sphinx way
(``:class:`~bge_vdb.errors.MissingExtra```). MkDocs renders Markdown, where such a role would show
as literal text, so the API reference shows the name as code instead (the last dotted part when
the target starts with ``~``, as Sphinx does).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|exc|data|obj):`(~?)([^`]+)`")


def _as_code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class RolesToCode(griffe.Extension):
    """Rewrite every docstring's roles as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **_: Any) -> None:  # type: ignore[override]
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_as_code, obj.docstring.value)
