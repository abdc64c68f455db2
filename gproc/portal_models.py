"""Rows of the web portal's server-side sessions (shared by every portal replica)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class PortalSessionRow(SQLModel, table=True):
    """One signed-in browser session. The key is the SHA-256 of the cookie value (a
    stolen table gives no cookie); the user's proxy is sealed with the portal's key."""

    __tablename__ = "portal_sessions"

    key: str = Field(primary_key=True, max_length=64)
    csrf: str = Field(max_length=64)
    dn: str = Field(max_length=1024)
    vo: str | None = Field(default=None, max_length=128)
    fqans: str = Field(default="")  # JSON list, for the pages (the proxy is the authority)
    is_admin: bool = False
    proxy: bytes  # Fernet token of the PEM proxy chain
    created: datetime
    last_seen: datetime
    expires: datetime = Field(index=True)  # min(created + max, proxy not-after)


class PortalSubmissionRow(SQLModel, table=True):
    """What the portal submitted for a user: the catalogue datasets a task or workflow
    was run on, so its result is shown on the map beside its inputs."""

    __tablename__ = "portal_submissions"

    id: str = Field(primary_key=True, max_length=64)  # task or workflow id
    kind: str = Field(max_length=16)  # task | workflow
    dn: str = Field(max_length=1024, index=True)
    inputs: str = Field(default="[]")  # JSON list of dataset refs
    created: datetime
