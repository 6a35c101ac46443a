"""Every job handler, registered by importing its module: the API (embedded worker) and
``civio worker`` import this one module, so neither can miss a task."""

from __future__ import annotations

from civio.auth import tasks as _auth  # noqa: F401
from civio.callbacks import delivery as _callbacks  # noqa: F401
from civio.messages import pipeline as _pipeline  # noqa: F401
from civio.notifications import email as _email_alerts  # noqa: F401
from civio.notifications.push import delivery as _push_alerts  # noqa: F401
from civio.profiles import email_validation as _email_validation  # noqa: F401
