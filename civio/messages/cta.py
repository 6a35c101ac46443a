"""Calls to action: the YAML front-matter block at the start of a message's markdown.

IO's app reads buttons from a block like::

    ---
    it:
      cta_1:
        text: "Prenota appuntamento"
        action: "iohandledlink://https://example.it/prenota"
    en:
      cta_1: {text: "Book an appointment", action: "iohandledlink://https://example.it/prenota"}
    ---
    The message body…

and hides the block from the body it shows. IO itself never checks the block: a malformed one
only makes the button vanish in the app, and the sender never learns why. civio checks it when
the message is accepted (``check_block``: a ``BadBlock`` says what is wrong) and hands citizen
clients the parsed buttons (``calls_to_action``), so they need no YAML parser of their own.

The rules (docs/cta.md): the block opens on the markdown's first line, exactly ``---``
(after an optional byte-order mark), and closes at the next line that is ``---`` or ``...``
(as the app's front-matter reader does); it is a mapping of locales among ``it``, ``en``,
``de``, with ``it`` required (the app falls back to Italian, so without it some citizens see
no button); each locale has ``cta_1`` and optionally ``cta_2``; each of those exactly
``text`` and ``action``, both strings. No anchors, aliases or tags: a block is small data,
not a program.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml

LOCALES = ("it", "en", "de")
REQUIRED_LOCALE = "it"
CTA_KEYS = ("cta_1", "cta_2")
# IO sets no bound; a button on a phone holds about this much on one line, and IO's guidance
# asks for a short, action-led label ("Prenota appuntamento": 20).
MAX_TEXT_LENGTH = 40
HANDLED_LINK = "iohandledlink://"
INTERNAL_ROUTE = "ioit://"
SINGLE_SIGN_ON = "iosso://"
# What IO's app opens behind ``iohandledlink://``: the OS handles the first five, the app
# itself ``copy`` (to the clipboard).
HANDLED_LINK_SCHEMES = ("http", "https", "tel", "sms", "mailto", "copy")

# As the app's reader: an optional byte-order mark, then exactly ``---`` on the first line;
# the closing line may carry trailing blanks.
_OPENING = re.compile(r"\ufeff?---\r?\n")
_CLOSING = re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.MULTILINE)
# A block that looks like CTAs but that the app would not recognise, and would show as text:
# preceded by blank lines, or opened by ``---`` with trailing blanks.
_MISPLACED = re.compile(r"\A(?:\s+---[ \t]*|---[ \t]+)\r?\n[ \t]*(?:it|en|de)[ \t]*:")
_NO_SPACE_OR_CONTROL = re.compile(r"\A[^\s\x00-\x1f\x7f]+\Z")
_ONE_LINE = re.compile(r"\A[^\x00-\x1f\x7f]*\Z")
# Root mapping → locale mapping → cta mapping → scalars.
_MAX_DEPTH = 3

ActionKind = Literal["link", "internal", "sso"]


class BadBlock(ValueError):
    """The markdown opens a CTA block that IO's app could not use; the text says why."""


@dataclass(frozen=True)
class Split:
    """A markdown body cut in two: the block's text (None without one) and the rest."""

    block: str | None
    body: str


def split(markdown: str) -> Split:
    """Cut the block off the markdown; ``BadBlock`` when one opens and never closes."""
    if _MISPLACED.match(markdown):
        raise BadBlock("the CTA block must open on the markdown's first line, with exactly '---'")
    opening = _OPENING.match(markdown)
    if opening is None:
        return Split(None, markdown)
    closing = _CLOSING.search(markdown, opening.end())
    if closing is None:
        raise BadBlock("the CTA block opened by '---' on the first line is never closed")
    return Split(markdown[opening.end() : closing.start()], markdown[closing.end() :])


def body_of(markdown: str) -> str:
    """The markdown as the app shows it, for previews. Never raises: a message accepted
    before blocks were checked keeps its text, block and all, rather than failing."""
    try:
        return split(markdown).body
    except BadBlock:
        return markdown


def check_block(markdown: str) -> None:
    """Refuse a malformed block (``BadBlock``); a markdown without one passes."""
    parse(markdown)


def parse(markdown: str) -> dict[str, dict[str, dict[str, str]]] | None:
    """The block's buttons by locale (``{"it": {"cta_1": {"text", "action"}}}``), None
    without a block; ``BadBlock`` when the block breaks a rule."""
    block = split(markdown).block
    if block is None:
        return None
    return _validate(_load(block))


def calls_to_action(markdown: str) -> dict[str, dict[str, dict[str, str]]] | None:
    """What citizen clients get: per locale, each button's text and action plus the
    action's ``kind`` (link, internal, sso) and ``target`` (what follows the scheme).
    None without a usable block (it was refused at accept; older messages are shown as
    they are)."""
    try:
        ctas = parse(markdown)
    except BadBlock:
        return None
    if ctas is None:
        return None
    return {
        locale: {key: {**cta, **_structured(cta["action"])} for key, cta in buttons.items()}
        for locale, buttons in ctas.items()
    }


def _structured(action: str) -> dict[str, str]:
    kind, target = _kind_and_target(action)
    return {"kind": kind, "target": target}


def _load(block: str) -> Any:
    """YAML through the safe loader, after a look at its events: anchors and aliases (the
    "billion laughs" shape), explicit tags and nesting deeper than a CTA block are refused
    before any object is built."""
    depth = 0
    try:
        for event in yaml.parse(block, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise BadBlock("the CTA block may not use YAML anchors or aliases")
            if isinstance(event, yaml.NodeEvent) and not _implicit(event):
                raise BadBlock("the CTA block may not use YAML tags")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > _MAX_DEPTH:
                    raise BadBlock("the CTA block is nested deeper than locale, cta and text")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        node = yaml.compose(block, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise BadBlock(f"the CTA block is not valid YAML ({_first_line(exc)})") from exc
    if node is None:
        return None
    _refuse_duplicate_keys(node)
    return yaml.SafeLoader(block).construct_document(node)


def _implicit(event: yaml.NodeEvent) -> bool:
    tag = getattr(event, "tag", None)
    return tag is None or tag == "!"


def _refuse_duplicate_keys(node: yaml.Node) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise BadBlock(f"the CTA block has the key {key.value!r} twice")
                seen.add(key.value)
            _refuse_duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item)


def _first_line(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 2}" if mark is not None else ""  # + the opening line
    return f"{problem or 'unreadable'}{where}"


def _validate(data: Any) -> dict[str, dict[str, dict[str, str]]]:
    if not isinstance(data, dict):
        raise BadBlock("the CTA block must be a mapping of locales (it, en, de)")
    unknown = [str(k) for k in data if k not in LOCALES]
    if unknown:
        raise BadBlock(
            f"the CTA block has unknown locale(s) {', '.join(unknown)}; allowed: it, en, de"
        )
    if REQUIRED_LOCALE not in data:
        raise BadBlock("the CTA block must have the 'it' locale")
    return {locale: _buttons(locale, data[locale]) for locale in LOCALES if locale in data}


def _buttons(locale: str, value: Any) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise BadBlock(f"{locale}: must be a mapping with cta_1 and optionally cta_2")
    extra = [str(k) for k in value if k not in CTA_KEYS]
    if extra:
        raise BadBlock(f"{locale}: unknown key(s) {', '.join(extra)}; allowed: cta_1, cta_2")
    if "cta_1" not in value:
        raise BadBlock(f"{locale}: cta_1 is required")
    return {key: _button(f"{locale}.{key}", value[key]) for key in CTA_KEYS if key in value}


def _button(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadBlock(f"{where}: must be a mapping with text and action")
    extra = [str(k) for k in value if k not in ("text", "action")]
    if extra:
        raise BadBlock(f"{where}: unknown key(s) {', '.join(extra)}; allowed: text, action")
    text, action = value.get("text"), value.get("action")
    if text is None:
        raise BadBlock(f"{where}.text is required")
    if not isinstance(text, str):
        raise BadBlock(f"{where}.text must be a string (quote it)")
    if not text.strip():
        raise BadBlock(f"{where}.text must not be empty")
    if len(text) > MAX_TEXT_LENGTH:
        raise BadBlock(f"{where}.text is {len(text)} characters; at most {MAX_TEXT_LENGTH}")
    if not _ONE_LINE.match(text):
        raise BadBlock(f"{where}.text must be one line, without control characters")
    if action is None:
        raise BadBlock(f"{where}.action is required")
    if not isinstance(action, str):
        raise BadBlock(f"{where}.action must be a string")
    try:
        _kind_and_target(action)
    except BadBlock as exc:
        raise BadBlock(f"{where}.action {exc}") from None
    return {"text": text, "action": action}


def _kind_and_target(action: str) -> tuple[ActionKind, str]:
    """The action's kind and what follows its scheme; ``BadBlock`` (a phrase completing
    "action …") for anything IO's app would not open."""
    if not _NO_SPACE_OR_CONTROL.match(action):
        raise BadBlock("must not be empty nor hold spaces or control characters")
    if action.lower().startswith(HANDLED_LINK):
        target = action[len(HANDLED_LINK) :]
        scheme, colon, rest = target.partition(":")
        if scheme.lower() not in HANDLED_LINK_SCHEMES or not colon or not rest:
            raise BadBlock(
                f"opens {target!r} through {HANDLED_LINK}; it must be one of "
                f"{', '.join(s + ':' for s in HANDLED_LINK_SCHEMES)} followed by a value"
            )
        if scheme.lower() in ("http", "https") and not re.match(r"//[^/?#]+", rest):
            raise BadBlock(f"opens {target!r}, a web address without a host")
        return "link", target
    if action.startswith(INTERNAL_ROUTE):
        target = action[len(INTERNAL_ROUTE) :]
        if not re.match(r"[A-Za-z0-9_]+(?:[/?].*)?\Z", target):
            raise BadBlock(f"names no app route after {INTERNAL_ROUTE} (e.g. ioit://PROFILE_MAIN)")
        return "internal", target
    if action.lower().startswith(SINGLE_SIGN_ON):
        target = action[len(SINGLE_SIGN_ON) :]
        if not re.match(r"https?://[^/?#]+", target, re.IGNORECASE):
            raise BadBlock(f"must be {SINGLE_SIGN_ON} followed by the portal's web address")
        return "sso", target
    raise BadBlock(
        f"must start with {HANDLED_LINK} (then {', '.join(HANDLED_LINK_SCHEMES)}), "
        f"{INTERNAL_ROUTE} or {SINGLE_SIGN_ON}"
    )
