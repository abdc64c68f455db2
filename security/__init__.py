"""Grid security: trust store, X.509/RFC 3820 proxy validation, VOMS ACs, test PKI.

Public API: `TrustStore`, `VomsTrust`, `Validator`, `validate_chain`, `Identity`,
`Fqan`, `ProxyType` and the `CredentialError` hierarchy."""

from security.chain import Validator, validate_chain
from security.errors import CredentialError, Reason, SecurityError
from security.identity import AcInfo, AcRejection, Fqan, Identity, ProxyType
from security.truststore import TrustStore
from security.voms import VomsTrust

__all__ = [
    "AcInfo", "AcRejection", "CredentialError", "Fqan", "Identity", "ProxyType", "Reason",
    "SecurityError", "TrustStore", "Validator", "VomsTrust", "validate_chain",
]
