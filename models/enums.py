"""The fixed vocabularies of the domain, declared once.

Each feeds the model field (and so the database CHECK constraint the migrations create),
the request and response schemas, and the OpenAPI document.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Category(StrEnum):
    EDUCATIONAL = "educational"
    SCIENTIFIC = "scientific"
    CREATIVE = "creative"
    SOCIAL = "social"
    SPORTS = "sports"


class Role(StrEnum):
    STUDENT = "student"
    CURATOR = "curator"
    ADMIN = "admin"


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class OrgUnitKind(StrEnum):
    UNIVERSITY = "university"
    FACULTY = "faculty"
    GROUP = "group"


# What a unit of each kind hangs under (the university is the one root).
PARENT_KIND = {OrgUnitKind.FACULTY: OrgUnitKind.UNIVERSITY, OrgUnitKind.GROUP: OrgUnitKind.FACULTY}


class RuleSetStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class ZeroReason(StrEnum):
    """Why an achievement scores 0 under a rule set (not stored: the API's ``reason``)."""

    NOT_APPROVED = "not_approved"
    OUT_OF_PERIOD = "out_of_period"
    NO_RULE = "no_rule"
    OVER_CAP = "over_cap"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


def literal(enum: type[StrEnum]):
    """A ``Literal`` of the enum's values, for request bodies (strict validation takes the
    JSON strings as they are)."""
    return Literal[values(enum)]


STAFF_ROLES = frozenset({Role.CURATOR, Role.ADMIN})
# A type slug: lower-case letters and digits in hyphen-separated words, at most 64 characters.
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


def check_in(column: str, enum: type[StrEnum]) -> str:
    """The SQL of a CHECK constraint that keeps ``column`` within ``enum``."""
    return f"{column} IN ({', '.join(repr(v) for v in values(enum))})"
