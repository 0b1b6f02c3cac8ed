"""Handlers of the extension statements: each takes (session, step) and returns rows, a message
or None. The session imports them on first use, so plain SQL never pays for them."""
