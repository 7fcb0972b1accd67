"""One module per `python -m hifi_core` sub-command (see hifi_core/cli.py)."""
