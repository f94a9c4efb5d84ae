"""Tortoise models: the one declaration of the schema (the migrations are generated from
them), with the vocabularies in ``models.enums``."""

from models.achievement import Achievement, AchievementCount, AchievementType
from models.audit import AuditEvent
from models.credentials import CredentialStatus
from models.enums import Category, Decision, OrgUnitKind, Outcome, Role, Status
from models.portfolio import ShareLink, ShareLinkAccess
from models.scoring import Level, Result, RuleSet
from models.university import CuratorScope, OrgUnit, OrgUnitLink, Review
from models.user import RefreshToken, Session, User

__all__ = [
    "Achievement",
    "AchievementCount",
    "AchievementType",
    "AuditEvent",
    "Category",
    "CredentialStatus",
    "CuratorScope",
    "Decision",
    "Level",
    "OrgUnit",
    "OrgUnitKind",
    "OrgUnitLink",
    "Outcome",
    "RefreshToken",
    "Result",
    "Review",
    "Role",
    "RuleSet",
    "Session",
    "ShareLink",
    "ShareLinkAccess",
    "Status",
    "User",
]
