"""OGC fronts over the same core, tasks, security and policy as the SOAP service.

``api_processes``: OGC API - Processes - Part 1: Core (JSON over HTTPS with the
client's X.509 proxy). A job *is* a gproc task: the same task is visible and
controllable from every front; :mod:`.tables` maps its states and errors.
"""
