"""Tortoise models: the one declaration of the schema (the migrations are generated from
them), with the vocabularies in ``models.enums``."""

from models.achievement import Achievement, AchievementCount, AchievementType
from models.audit import AuditEvent
from models.enums import Category, Decision, Outcome, Role, Status
from models.user import RefreshToken, Session, User

__all__ = [
    "Achievement",
    "AchievementCount",
    "AchievementType",
    "AuditEvent",
    "Category",
    "Decision",
    "Outcome",
    "RefreshToken",
    "Role",
    "Session",
    "Status",
    "User",
]
