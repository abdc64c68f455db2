"""The storage gateway's errors belong to the categories of gproc.errors (one root,
stable codes) and keep their own names, so fronts map them by code."""

from __future__ import annotations

import pytest

from gproc import errors
from gproc.storage_gateway.backends import base
from gproc.storage_gateway.namespace import Namespace, NamespaceError
from gproc.storage_gateway.sshkeys import KeyConflict, KeyError_, SessionRefused

CATEGORIES = [
    (base.NotFound, errors.NotFound, "Client.NotFound"),
    (base.AlreadyExists, errors.Conflict, "Client.Conflict"),
    (base.Conflict, errors.Conflict, "Client.Conflict"),
    (base.PermissionDenied, errors.NotAuthorised, "Client.NotAuthorised"),
    (base.BackendUnavailable, errors.Unavailable, "Server.Unavailable"),
    (base.QuotaExceeded, errors.LimitExceeded, "Client.LimitExceeded"),
    (base.InvalidPath, errors.InvalidRequest, "Client.InvalidRequest"),
    (base.InvalidRange, errors.InvalidRequest, "Client.InvalidRequest"),
    (base.ChecksumMismatch, errors.InvalidRequest, "Client.InvalidRequest"),
    (base.NotSupported, errors.InvalidRequest, "Client.InvalidRequest"),
    (NamespaceError, errors.InvalidRequest, "Client.InvalidRequest"),
    (KeyError_, errors.InvalidRequest, "Client.InvalidRequest"),
    (KeyConflict, errors.Conflict, "Client.Conflict"),
    (SessionRefused, errors.NotAuthorised, "Client.NotAuthorised"),
]


@pytest.mark.parametrize("cls,category,code", CATEGORIES, ids=lambda v: getattr(v, "__name__", v))
def test_category_and_code(cls: type[Exception], category: type, code: str) -> None:
    err = cls("what went wrong")
    assert isinstance(err, category) and isinstance(err, errors.GprocError)
    assert err.code == code  # type: ignore[attr-defined]
    assert str(err) == "what went wrong"


def test_storage_errors_keep_their_family_and_retryability() -> None:
    assert all(issubclass(c, base.StorageError) for c, _, _ in CATEGORIES[:10])
    assert base.BackendUnavailable("down").retryable
    assert not base.NotFound("gone").retryable
    assert issubclass(KeyConflict, KeyError_)  # callers catching the family still do


def test_namespace_error_raised_by_loading_is_an_invalid_request() -> None:
    with pytest.raises(errors.InvalidRequest, match="unknown top-level keys"):
        Namespace.from_dict({"nonsense": 1})
