"""Analyse page script, run by ``st.navigation`` (see ``dashboard.app.pages``)."""

from twitchwatch.dashboard.analyse_view import render
from twitchwatch.dashboard.app import context

ctx = context()
if ctx is not None:
    render(ctx)
