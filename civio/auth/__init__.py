"""Citizens' sessions: test login (dev), OpenID Connect login, bearer tokens."""
