"""Live page script, run by ``st.navigation`` (see ``dashboard.app.pages``)."""

from twitchwatch.dashboard.app import context
from twitchwatch.dashboard.live_view import render

ctx = context()
if ctx is not None:
    render(ctx)
