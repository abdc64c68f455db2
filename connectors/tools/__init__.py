"""One module per processing tool; register new ones in ``connectors/registry.py``."""
