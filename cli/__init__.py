"""The ``autoopt`` command line."""
