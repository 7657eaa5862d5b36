"""Errors of the data layer (kept free of heavy imports: the CLI loads this module for every command)."""


class DatasetError(ValueError):
    """A data set location is missing, empty or malformed; the message names the URL."""
