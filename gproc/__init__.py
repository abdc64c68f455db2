"""gproc core: task model, lifecycle, registry and tracker.

The core never imports the SOAP stack; services convert wire types into the
domain types defined here.
"""

__version__ = "0.1.0"
