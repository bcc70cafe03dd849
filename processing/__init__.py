"""Processing: the streaming twitch detector, the worker, and the event stores."""
