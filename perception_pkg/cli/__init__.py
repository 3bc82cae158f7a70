"""The ``perception`` command."""
