"""The `nephelae` command line: operator commands act on the home, user commands go through the HTTP API."""
