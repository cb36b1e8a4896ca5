"""Identifiers of what the box writes about an image, derived, not random: the same source image classified by the
same bundle always gives the same SR, secondary capture and FHIR resources, so a PACS or EHR that receives them
again (a resend after a lost acknowledgement, a stick classified twice) updates nothing and stores no second copy.

DICOM UIDs are UUID-derived (`2.25.` and the UUID's 128 bits as one decimal number, PS3.5 B.2); the UUIDs are
name-based (RFC 4122 version 5) in a namespace of cxr-edge's own, from the source's UID, the bundle's manifest
sha256 and what the object is."""

from __future__ import annotations

import uuid

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/cxr-edge/cxr-edge/record")


def derived_uuid(*parts: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "\x1f".join(parts))


def derived_uid(*parts: str) -> str:
    """A DICOM UID (at most 44 characters, within the 64 allowed) for `parts`."""
    return f"2.25.{derived_uuid(*parts).int}"


def derived_urn(*parts: str) -> str:
    """A FHIR fullUrl and identifier value for `parts`."""
    return f"urn:uuid:{derived_uuid(*parts)}"
