"""OGC fronts over the same core, tasks, security and policy as the SOAP service.

``api_processes``: OGC API - Processes - Part 1: Core (JSON over HTTPS with the
client's X.509 proxy); ``wps`` dispatches ``/wps`` to ``wps2`` (WPS 2.0) and ``wps1``
(WPS 1.0.0), which share ``wps_common``; ``front`` holds the job operations all of
them share. A job *is* a gproc task: the same task is visible and
controllable from every front; :mod:`.tables` maps its states and errors.
"""
