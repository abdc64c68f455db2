"""The GiSHEO web portal (``gproc portal serve``): a client of gproc's public APIs."""
