"""The response models: every body the API answers with, declared once.

Each is a pydantic ``TypedDict`` wrapped in a :class:`~service.platform.views.View`: the view
serialises the handler's dict (ids, times and dates as their Python values) and its schema is
the named component of the OpenAPI document (``title`` = the component's name, the class's
name). Keys a model does not declare never leave the server.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, WithJsonSchema, with_config
from typing_extensions import TypedDict

from models.enums import Category, Decision, OrgUnitKind, Outcome, Role, RuleSetStatus, Status, ZeroReason, values
from service.platform.views import View, named_enum

closed = with_config(ConfigDict(extra="forbid"))
"""``additionalProperties: false``: what a model does not declare is no part of the answer."""

CategoryName = named_enum("Category", Category)
StatusName = named_enum("Status", Status)
DecisionName = named_enum("Decision", Decision)
OutcomeName = named_enum("Outcome", Outcome)
OrgUnitKindName = named_enum("OrgUnitKind", OrgUnitKind)
RoleName = named_enum("Role", Role)
RuleSetStatusName = named_enum("RuleSetStatus", RuleSetStatus)
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
"""Points: a whole number stays one (5, not 5.0)."""
ZeroReasonName = Annotated[str | None, WithJsonSchema(
    {"type": ["string", "null"], "enum": [*values(ZeroReason), None],
     "description": "why the points are 0 (null when a rule gave them)"})]


# --- accounts ---------------------------------------------------------------------------------------

@closed
class User(TypedDict):
    id: uuid.UUID
    email: str
    full_name: str
    role: RoleName
    is_active: bool
    created_at: dt.datetime
    org_unit_id: Annotated[uuid.UUID | None, Field(description="the user's group (null: the university itself)")]


@closed
class TokenResponse(TypedDict):
    access_token: str
    token_type: named_enum(None, ["Bearer"])
    expires_in: int
    user: User


@closed
class UserPage(TypedDict):
    items: list[User]
    next_cursor: str | None


# --- achievements ------------------------------------------------------------------------------------

@closed
class Review(TypedDict):
    decision: DecisionName
    comment: str | None
    reviewer_id: uuid.UUID | None
    reviewed_at: dt.datetime | None
    reviewer_name: str | None


@closed
class Achievement(TypedDict):
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    type: str
    category: CategoryName
    date: dt.date
    proof_url: str | None
    description: str | None
    status: StatusName
    review: Review | None
    owner_name: Annotated[str, Field(description="the owner's full name (display data)")]
    type_name: Annotated[str, Field(description="the type's name (display data)")]
    level: Annotated[str | None, Field(description="the event's level slug (see /levels), or null")]
    result: Annotated[str | None, Field(description="the result's slug (see /results), or null")]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


@closed
class AchievementPage(TypedDict):
    items: list[Achievement]
    next_cursor: str | None
    total: int


@closed
class BatchResult(TypedDict):
    created: int
    ids: list[uuid.UUID]


@closed
class Stats(TypedDict):
    total: int
    by_category: dict[str, int]
    by_status: dict[str, int]
    by_year: dict[str, int]


class AchievementExport(TypedDict):
    # Streamed item by item, each one serialised by ACHIEVEMENT.
    items: list[Achievement]


@closed
class ReviewHistoryEntry(TypedDict):
    decision: DecisionName
    comment: str | None
    reviewer_id: uuid.UUID
    reviewer_name: str | None
    reviewed_at: dt.datetime
    version: Annotated[int, Field(description="the version that was judged")]


@closed
class ReviewHistory(TypedDict):
    items: list[ReviewHistoryEntry]


@closed
class AchievementType(TypedDict):
    slug: str
    name: str
    category: CategoryName
    is_active: bool


@closed
class AchievementTypeList(TypedDict):
    items: list[AchievementType]


# --- administration ------------------------------------------------------------------------------------

@closed
class AuditEvent(TypedDict):
    id: uuid.UUID
    occurred_at: dt.datetime
    request_id: str | None
    actor_id: uuid.UUID | None
    ip: str | None
    action: str
    target_type: str | None
    target_id: str | None
    outcome: OutcomeName
    details: dict[str, Any]


@closed
class AuditEventPage(TypedDict):
    items: list[AuditEvent]
    next_cursor: str | None


# --- the university ------------------------------------------------------------------------------------

@closed
class OrgUnit(TypedDict):
    id: uuid.UUID
    name: str
    kind: OrgUnitKindName
    parent_id: uuid.UUID | None


@closed
class OrgUnitList(TypedDict):
    items: list[OrgUnit]


@closed
class CuratorScopes(TypedDict):
    org_unit_ids: list[uuid.UUID]


# --- share links and the portfolio ------------------------------------------------------------------------

@closed
class ShareLink(TypedDict):
    id: uuid.UUID
    label: str
    expires_at: dt.datetime
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@closed
class ShareLinkCreated(TypedDict):
    id: uuid.UUID
    label: str
    url: Annotated[str, Field(description="the public page's address; its last segment is the token",
                              json_schema_extra={"format": "uri"})]
    expires_at: dt.datetime
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@closed
class ShareLinkList(TypedDict):
    items: list[ShareLink]


@closed
class ShareLinkAccess(TypedDict):
    at: dt.datetime
    ip_hash: str


@closed
class ShareLinkAccessList(TypedDict):
    items: list[ShareLinkAccess]


@closed
class PortfolioUnit(TypedDict):
    name: str
    kind: OrgUnitKindName


@closed
class PortfolioItem(TypedDict):
    title: str
    type_name: str
    category: CategoryName
    date: dt.date
    level: str | None
    result: str | None
    proof_url: str | None


@closed
class Portfolio(TypedDict):
    owner_name: str
    org_unit: PortfolioUnit | None
    items: list[PortfolioItem]


# --- scoring ---------------------------------------------------------------------------------------------

@closed
class CatalogueEntry(TypedDict):
    slug: str
    name: str
    is_active: bool
    rank: NotRequired[Annotated[int, Field(description="levels only: a higher rank is wider")]]


@closed
class CatalogueList(TypedDict):
    items: list[CatalogueEntry]


@closed
class ScoringRule(TypedDict):
    category: NotRequired[CategoryName]
    type: NotRequired[str]
    level: NotRequired[str]
    result: NotRequired[str]
    points: Number
    max_items: NotRequired[int]


@closed
class RuleSet(TypedDict):
    id: uuid.UUID
    name: str
    period_from: dt.date
    period_to: dt.date
    rules: list[ScoringRule]
    status: RuleSetStatusName
    published_at: dt.datetime | None
    created_at: dt.datetime


@closed
class RuleSetList(TypedDict):
    items: list[RuleSet]


@closed
class AchievementScore(TypedDict):
    points: Number
    rule_index: int | None
    rule_set_id: uuid.UUID
    reason: ZeroReasonName


@closed
class StudentScoreItem(TypedDict):
    achievement_id: uuid.UUID
    points: Number
    rule_index: int | None
    reason: ZeroReasonName


@closed
class StudentScore(TypedDict):
    rule_set_id: uuid.UUID
    total: Number
    items: list[StudentScoreItem]


@closed
class RatingRow(TypedDict):
    rank: int
    student_id: uuid.UUID
    full_name: str
    org_unit_id: uuid.UUID | None
    points: Number
    by_category: dict[str, Number]
    counted: int
    eligible: bool


@closed
class Rating(TypedDict):
    rule_set_id: uuid.UUID
    org_unit_id: uuid.UUID
    top_share: Number
    items: list[RatingRow]


# --- credentials and the system ----------------------------------------------------------------------------

class JsonWebKeySet(TypedDict):
    keys: list[dict[str, Any]]


@closed
class HealthStatus(TypedDict):
    status: named_enum(None, ["ok"])


USER = View(User)
TOKEN = View(TokenResponse)
USER_PAGE = View(UserPage)
ACHIEVEMENT = View(Achievement)
ACHIEVEMENT_PAGE = View(AchievementPage)
BATCH_RESULT = View(BatchResult)
STATS = View(Stats)
EXPORT_JSON = View(AchievementExport)
REVIEW_HISTORY = View(ReviewHistory)
TYPE = View(AchievementType)
TYPE_LIST = View(AchievementTypeList)
AUDIT_PAGE = View(AuditEventPage)
ORG_UNIT = View(OrgUnit)
ORG_UNIT_LIST = View(OrgUnitList)
SCOPES = View(CuratorScopes)
SHARE_LINK_CREATED = View(ShareLinkCreated)
SHARE_LINK_LIST = View(ShareLinkList)
ACCESS_LIST = View(ShareLinkAccessList)
PORTFOLIO = View(Portfolio)
CATALOGUE_ENTRY = View(CatalogueEntry)
CATALOGUE_LIST = View(CatalogueList)
RULE_SET = View(RuleSet)
RULE_SET_LIST = View(RuleSetList)
SCORE = View(AchievementScore)
STUDENT_SCORE = View(StudentScore)
RATING = View(Rating)
JWKS = View(JsonWebKeySet)
HEALTH = View(HealthStatus)
