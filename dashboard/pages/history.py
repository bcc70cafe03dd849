"""History page script, run by ``st.navigation`` (see ``dashboard.app.pages``)."""

from dashboard.app import context
from dashboard.history_view import render

ctx = context()
if ctx is not None:
    render(ctx)
