"""Overview page script, run by ``st.navigation`` (see ``dashboard.app.pages``)."""

from twitchwatch.dashboard.app import context, render_overview

ctx = context()
if ctx is not None:
    render_overview(ctx)
