"""The one error type of configuration: a key unknown, mistyped or out of range (the message names it)."""


class ConfigError(ValueError):
    """A configuration key is unknown, mistyped or out of range; the message names the key."""
