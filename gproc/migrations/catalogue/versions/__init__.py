"""Catalogue revisions, one file each, named cNNNN_<what>.py (see gproc.migrations.catalogue)."""
