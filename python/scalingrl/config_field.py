"""``config_field``: a dataclass field that carries its documentation.

Every config dataclass field is declared as ``name: type = config_field(default, help="...")``. The
text is the field's one documentation: ``--help`` (``scalingrl.config.describe_fields``) prints it
and a test checks that no field lacks it. It lives in ``field.metadata["help"]``.

Left out on purpose: types and validation (the dataclass annotations and ``__post_init__``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["config_field", "HELP"]

HELP = "help"  # the metadata key


def config_field(
    default: Any = dataclasses.MISSING, *, help: str, default_factory: Callable[[], Any] | Any = dataclasses.MISSING
) -> Any:
    """``dataclasses.field`` with ``metadata={"help": help}``; pass ``default`` or ``default_factory``.

    Raises:
        ValueError: ``help`` is empty, or both or neither of ``default`` and ``default_factory`` are given.
    """
    if not help.strip():
        raise ValueError("config_field needs a non-empty help text")
    if (default is dataclasses.MISSING) == (default_factory is dataclasses.MISSING):
        raise ValueError("config_field takes exactly one of default and default_factory")
    return dataclasses.field(default=default, default_factory=default_factory, metadata={HELP: help})
