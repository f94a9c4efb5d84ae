"""Tortoise models: the schema the migrations create, and small entity methods."""

from models.achievement import Achievement, AchievementType
from models.audit import AuditEvent
from models.user import RefreshToken, Session, User

CATEGORIES = ("educational", "scientific", "creative", "social", "sports")
ROLES = ("student", "curator", "admin")
STATUSES = ("pending", "approved", "rejected")

__all__ = [
    "CATEGORIES",
    "ROLES",
    "STATUSES",
    "Achievement",
    "AchievementType",
    "AuditEvent",
    "RefreshToken",
    "Session",
    "User",
]
