"""Built-in recipes (TOML), loaded as ``builtin:NAME``."""
