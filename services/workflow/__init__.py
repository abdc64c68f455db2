"""The SOAP workflow service (``urn:gproc:workflow:1``) on the chassis: GiSHEO SiLK or
structured workflows, run by HTCondor DAGMan (``gproc.workflows``)."""
