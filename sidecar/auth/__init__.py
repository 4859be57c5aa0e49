"""Sign-in, sessions, first-login signup and identity: the web side of SSO."""
