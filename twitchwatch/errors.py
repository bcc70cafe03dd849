"""The project's own errors: one base, so that a caller can tell a failure twitchwatch explains from a bug.

- :class:`UserError`: the input or the configuration is wrong (a malformed file, frame, name, option or
  setting). The message names what is wrong — the key, the field, the byte offset, the line — and how to
  put it right; ``twitchwatch`` prints it and exits 2.
- any other :class:`TwitchwatchError`: something the user can act on went wrong outside the input (a store
  or a broker that cannot be reached, a device that disconnected); ``twitchwatch`` prints it and exits 1.
- everything else (a ``ValueError`` from numpy, a ``KeyError`` in our code) is a bug: ``twitchwatch``
  exits 1 with the traceback, so that it can be reported and fixed, not mistaken for a usage error.

Every module may import this one (it imports nothing of the project). Error classes that were
``ValueError`` s before keep ``ValueError`` as a second base, so code that catches ``ValueError`` still
catches them.
"""

from __future__ import annotations


class TwitchwatchError(Exception):
    """A failure twitchwatch expected and explains in its message."""


class UserError(TwitchwatchError):
    """Bad input or bad configuration; the message names the offending key, field, line or byte."""
