"""Revisions, one file each, named vNNNN_<what>.py (see gproc.migrations)."""
