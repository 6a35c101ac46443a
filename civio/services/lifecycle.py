"""IO's two state machines for a managed service, as pure functions (no I/O).

Lifecycle (the working copy under review): ``draft`` → ``submitted`` (the owner asks for
review) → ``approved`` or ``rejected`` (a platform operator decides). An edit is allowed
from ``draft``, ``rejected`` and ``approved`` and always lands in ``draft``; a rejected
service goes back to review only after an edit. Deletion is allowed from the same three
states. While ``submitted`` the copy is frozen: edit, delete and a second review are 409.

Publication (the released copy, the live ``services`` row): ``published`` or
``unpublished``. Approval releases the working copy: a service released for the first time
is ``unpublished`` unless the owner asked for ``auto_publish``; a service already released
keeps its publication state (IO's publication ``release`` overrides the data, not the state).
Publishing what is published, or unpublishing what is not, is 409 as in IO's FSM.
"""

from __future__ import annotations

from typing import Literal

from civio.core.problems import Problem

LifecycleStatus = Literal["draft", "submitted", "approved", "rejected", "deleted"]
PublicationStatus = Literal["published", "unpublished"]
Action = Literal["edit", "submit", "approve", "reject", "delete"]

# For each action: the states it may start from, and where it lands.
TRANSITIONS: dict[Action, tuple[frozenset[LifecycleStatus], LifecycleStatus]] = {
    "edit": (frozenset({"draft", "rejected", "approved"}), "draft"),
    "submit": (frozenset({"draft"}), "submitted"),
    "approve": (frozenset({"submitted"}), "approved"),
    "reject": (frozenset({"submitted"}), "rejected"),
    "delete": (frozenset({"draft", "rejected", "approved"}), "deleted"),
}


def conflict(detail: str) -> Problem:
    return Problem(409, "Conflict", detail)


def next_status(current: LifecycleStatus, action: Action) -> LifecycleStatus:
    """Where ``action`` takes a service in ``current``; 409 when it may not."""
    allowed, target = TRANSITIONS[action]
    if current not in allowed:
        raise conflict(
            f"A service in status '{current}' cannot be {_PAST[action]}; allowed from: "
            f"{', '.join(sorted(allowed))}."
        )
    return target


_PAST: dict[Action, str] = {
    "edit": "edited",
    "submit": "sent to review",
    "approve": "approved",
    "reject": "rejected",
    "delete": "deleted",
}


def publish(current: PublicationStatus) -> PublicationStatus:
    if current == "published":
        raise conflict("The service is already published.")
    return "published"


def unpublish(current: PublicationStatus) -> PublicationStatus:
    if current == "unpublished":
        raise conflict("The service is not published.")
    return "unpublished"


def released_status(current: PublicationStatus | None, *, auto_publish: bool) -> PublicationStatus:
    """The publication state after an approval releases a new version."""
    if auto_publish:
        return "published"
    return current or "unpublished"
