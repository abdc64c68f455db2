"""Grid security: trust store, X.509/RFC 3820 proxy validation, VOMS ACs, test PKI.

Public API: `TrustStore`, `VomsTrust`, `Validator`, `validate_chain`, `Identity`,
`Fqan`, `ProxyType` and the `CredentialError` hierarchy."""

from gproc.security.chain import Validator, validate_chain
from gproc.security.errors import CredentialError, Reason, SecurityError
from gproc.security.identity import AcInfo, AcRejection, Fqan, Identity, ProxyType
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust

__all__ = [
    "AcInfo",
    "AcRejection",
    "CredentialError",
    "Fqan",
    "Identity",
    "ProxyType",
    "Reason",
    "SecurityError",
    "TrustStore",
    "Validator",
    "VomsTrust",
    "validate_chain",
]
