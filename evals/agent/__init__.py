"""The agent eval: conversations as data files (``scenarios/*.toml``), a scorer, and a runner (``make eval``)."""
