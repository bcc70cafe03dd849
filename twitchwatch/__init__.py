"""Composition root: configuration, the ``twitchwatch`` CLI and the in-process demo."""

__version__ = "0.1.0"
