"""The toolkit's version, in one place: the package, exported files and model cards read it from here."""

__version__ = "0.1.0"
