"""Dashboard: the Streamlit app over the processing store's read API."""
