"""The ``((placeholder))`` syntax of the models' texts: civio's template syntax.

The models are written in the templates domain's syntax and rendered by its renderer
(``civio.templates.render``); this module only names what the model checks use, so the
syntax has one definition.
"""

from __future__ import annotations

from civio.templates.render import (
    CONDITIONAL,
    NAME,
    PLACEHOLDER,
    flags,
    leftover_markup,
    placeholders,
)

__all__ = ["CONDITIONAL", "NAME", "PLACEHOLDER", "flags", "leftover_markup", "placeholders"]
