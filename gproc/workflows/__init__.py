"""Workflows: GiSHEO SiLK documents and structured DAGs, executed by HTCondor DAGMan.

``document`` holds the typed workflow document both forms parse into (``silk``,
``structured``); ``compile`` validates a document and expands it into concrete DAG
nodes; ``service`` registers, submits and controls workflows; ``tracker`` follows
them; ``notify`` delivers signed callbacks.
"""
