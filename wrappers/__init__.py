"""Workload-manager interface (``wrappers.base``) and its implementations."""
