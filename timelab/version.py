"""timelab's version (also written into every edit file it saves)."""

__version__ = "0.1.0"
