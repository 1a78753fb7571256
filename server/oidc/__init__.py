"""Single sign-on for staff with OpenID Connect: the provider (provider.py), its tokens
checked (tokens.py), the login flow and the logouts (login.py)."""
