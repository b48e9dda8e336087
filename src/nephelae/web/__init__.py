"""HTML pages for people: the landing page says what the platform hosts and how to connect."""
