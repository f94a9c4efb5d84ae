"""Response schemas of the achievements, types and admin blueprints (OpenAPI)."""

from __future__ import annotations

from blueprints.docs import USER_SCHEMA
from models.enums import Category, Decision, OrgUnitKind, Outcome, RuleSetStatus, Status, values

_UUID = {"type": "string", "format": "uuid"}


def _enum(title: str, enum) -> dict:
    """A named enum component (one ``Category`` type in generated clients, not one per use)."""
    return {"title": title, "type": "string", "enum": list(values(enum))}


CATEGORY = _enum("Category", Category)
STATUS = _enum("Status", Status)
DECISION = _enum("Decision", Decision)
OUTCOME = _enum("Outcome", Outcome)
ORG_UNIT_KIND = _enum("OrgUnitKind", OrgUnitKind)
_NULLABLE_STR = {"type": ["string", "null"]}

REVIEW_SCHEMA = {
    "title": "Review",
    "type": "object",
    "additionalProperties": False,
    "required": ["decision", "comment", "reviewer_id", "reviewed_at", "reviewer_name"],
    "properties": {
        "decision": DECISION,
        "comment": _NULLABLE_STR,
        "reviewer_id": {"type": ["string", "null"], "format": "uuid"},
        "reviewed_at": {"type": ["string", "null"], "format": "date-time"},
        "reviewer_name": _NULLABLE_STR,
    },
}

ACHIEVEMENT_SCHEMA = {
    "title": "Achievement",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "owner_id", "title", "type", "category", "date", "proof_url", "description",
                 "status", "review", "version", "created_at", "updated_at", "owner_name", "type_name", "level",
                 "result"],
    "properties": {
        "id": _UUID,
        "owner_id": _UUID,
        "title": {"type": "string"},
        "type": {"type": "string"},
        "category": CATEGORY,
        "date": {"type": "string", "format": "date"},
        "proof_url": _NULLABLE_STR,
        "description": _NULLABLE_STR,
        "status": STATUS,
        "review": {"anyOf": [REVIEW_SCHEMA, {"type": "null"}]},
        "owner_name": {"type": "string", "description": "the owner's full name (display data)"},
        "type_name": {"type": "string", "description": "the type's name (display data)"},
        "level": {**_NULLABLE_STR, "description": "the event's level slug (see /levels), or null"},
        "result": {**_NULLABLE_STR, "description": "the result's slug (see /results), or null"},
        "version": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}

ACHIEVEMENT_PAGE_SCHEMA = {
    "title": "AchievementPage",
    "type": "object",
    "additionalProperties": False,
    "required": ["items", "next_cursor", "total"],
    "properties": {
        "items": {"type": "array", "items": ACHIEVEMENT_SCHEMA},
        "next_cursor": _NULLABLE_STR,
        "total": {"type": "integer"},
    },
}

BATCH_RESULT_SCHEMA = {
    "title": "BatchResult",
    "type": "object",
    "additionalProperties": False,
    "required": ["created", "ids"],
    "properties": {"created": {"type": "integer"}, "ids": {"type": "array", "items": _UUID}},
}

_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
STATS_SCHEMA = {
    "title": "Stats",
    "type": "object",
    "additionalProperties": False,
    "required": ["total", "by_category", "by_status", "by_year"],
    "properties": {"total": {"type": "integer"}, "by_category": _COUNTS, "by_status": _COUNTS,
                   "by_year": _COUNTS},
}

EXPORT_JSON_SCHEMA = {
    "title": "AchievementExport",
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": ACHIEVEMENT_SCHEMA}},
}

TYPE_SCHEMA = {
    "title": "AchievementType",
    "type": "object",
    "additionalProperties": False,
    "required": ["slug", "name", "category", "is_active"],
    "properties": {
        "slug": {"type": "string"},
        "name": {"type": "string"},
        "category": CATEGORY,
        "is_active": {"type": "boolean"},
    },
}

TYPE_LIST_SCHEMA = {
    "title": "AchievementTypeList",
    "type": "object",
    "additionalProperties": False,
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": TYPE_SCHEMA}},
}

USER_PAGE_SCHEMA = {
    "title": "UserPage",
    "type": "object",
    "additionalProperties": False,
    "required": ["items", "next_cursor"],
    "properties": {"items": {"type": "array", "items": USER_SCHEMA}, "next_cursor": _NULLABLE_STR},
}

AUDIT_EVENT_SCHEMA = {
    "title": "AuditEvent",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "occurred_at", "request_id", "actor_id", "ip", "action", "target_type", "target_id",
                 "outcome", "details"],
    "properties": {
        "id": _UUID,
        "occurred_at": {"type": "string", "format": "date-time"},
        "request_id": _NULLABLE_STR,
        "actor_id": {"type": ["string", "null"], "format": "uuid"},
        "ip": _NULLABLE_STR,
        "action": {"type": "string"},
        "target_type": _NULLABLE_STR,
        "target_id": _NULLABLE_STR,
        "outcome": OUTCOME,
        "details": {"type": "object"},
    },
}

AUDIT_PAGE_SCHEMA = {
    "title": "AuditEventPage",
    "type": "object",
    "additionalProperties": False,
    "required": ["items", "next_cursor"],
    "properties": {"items": {"type": "array", "items": AUDIT_EVENT_SCHEMA}, "next_cursor": _NULLABLE_STR},
}


REVIEW_HISTORY_SCHEMA = {
    "title": "ReviewHistory",
    "type": "object",
    "additionalProperties": False,
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["decision", "comment", "reviewer_id", "reviewer_name", "reviewed_at", "version"],
        "properties": {
            "decision": DECISION,
            "comment": _NULLABLE_STR,
            "reviewer_id": _UUID,
            "reviewer_name": _NULLABLE_STR,
            "reviewed_at": {"type": "string", "format": "date-time"},
            "version": {"type": "integer", "description": "the version that was judged"},
        },
    }}},
}

ORG_UNIT_SCHEMA = {
    "title": "OrgUnit",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "name", "kind", "parent_id"],
    "properties": {
        "id": _UUID,
        "name": {"type": "string"},
        "kind": ORG_UNIT_KIND,
        "parent_id": {"type": ["string", "null"], "format": "uuid"},
    },
}

ORG_UNIT_LIST_SCHEMA = {
    "title": "OrgUnitList",
    "type": "object",
    "additionalProperties": False,
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": ORG_UNIT_SCHEMA}},
}

SCOPES_SCHEMA = {
    "title": "CuratorScopes",
    "type": "object",
    "additionalProperties": False,
    "required": ["org_unit_ids"],
    "properties": {"org_unit_ids": {"type": "array", "items": _UUID}},
}


_SHARE_LINK_PROPERTIES = {
    "id": _UUID,
    "label": {"type": "string"},
    "expires_at": {"type": "string", "format": "date-time"},
    "created_at": {"type": "string", "format": "date-time"},
    "revoked_at": {"type": ["string", "null"], "format": "date-time"},
}

SHARE_LINK_SCHEMA = {
    "title": "ShareLink",
    "type": "object",
    "additionalProperties": False,
    "required": list(_SHARE_LINK_PROPERTIES),
    "properties": _SHARE_LINK_PROPERTIES,
}

SHARE_LINK_CREATED_SCHEMA = {
    "title": "ShareLinkCreated",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "label", "url", "expires_at", "created_at", "revoked_at"],
    "properties": {**_SHARE_LINK_PROPERTIES, "url": {
        "type": "string", "format": "uri", "description": "the public page's address; its last segment is the token"}},
}

SHARE_LINK_LIST_SCHEMA = {
    "title": "ShareLinkList",
    "type": "object",
    "additionalProperties": False,
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": SHARE_LINK_SCHEMA}},
}

ACCESS_LIST_SCHEMA = {
    "title": "ShareLinkAccessList",
    "type": "object",
    "additionalProperties": False,
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["at", "ip_hash"],
        "properties": {"at": {"type": "string", "format": "date-time"}, "ip_hash": {"type": "string"}}}}},
}

PORTFOLIO_SCHEMA = {
    "title": "Portfolio",
    "type": "object",
    "additionalProperties": False,
    "required": ["owner_name", "org_unit", "items"],
    "properties": {
        "owner_name": {"type": "string"},
        "org_unit": {"type": ["object", "null"], "additionalProperties": False, "required": ["name", "kind"],
                     "properties": {"name": {"type": "string"},
                                    "kind": ORG_UNIT_KIND}},
        "items": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["title", "type_name", "category", "date", "level", "result", "proof_url"],
            "properties": {
                "title": {"type": "string"}, "type_name": {"type": "string"},
                "category": CATEGORY,
                "date": {"type": "string", "format": "date"}, "level": _NULLABLE_STR, "result": _NULLABLE_STR,
                "proof_url": _NULLABLE_STR,
            },
        }},
    },
}


CATALOGUE_ITEM_SCHEMA = {
    "title": "CatalogueEntry",
    "type": "object",
    "additionalProperties": False,
    "required": ["slug", "name", "is_active"],
    "properties": {"slug": {"type": "string"}, "name": {"type": "string"}, "is_active": {"type": "boolean"},
                   "rank": {"type": "integer", "description": "levels only: a higher rank is wider"}},
}

CATALOGUE_LIST_SCHEMA = {
    "title": "CatalogueList",
    "type": "object",
    "additionalProperties": False,
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": CATALOGUE_ITEM_SCHEMA}},
}

_NUMBER = {"type": "number"}
RULE_SCHEMA = {
    "title": "ScoringRule",
    "type": "object",
    "additionalProperties": False,
    "required": ["points"],
    "properties": {"category": CATEGORY, "type": {"type": "string"}, "level": {"type": "string"},
                   "result": {"type": "string"}, "points": _NUMBER, "max_items": {"type": "integer"}},
}

RULE_SET_SCHEMA = {
    "title": "RuleSet",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "name", "period_from", "period_to", "rules", "status", "published_at", "created_at"],
    "properties": {
        "id": _UUID, "name": {"type": "string"},
        "period_from": {"type": "string", "format": "date"}, "period_to": {"type": "string", "format": "date"},
        "rules": {"type": "array", "items": RULE_SCHEMA},
        "status": _enum("RuleSetStatus", RuleSetStatus),
        "published_at": {"type": ["string", "null"], "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}

RULE_SET_LIST_SCHEMA = {
    "title": "RuleSetList",
    "type": "object",
    "additionalProperties": False,
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": RULE_SET_SCHEMA}},
}

_REASON = {"type": ["string", "null"], "enum": ["not_approved", "out_of_period", "no_rule", "over_cap", None]}
SCORE_SCHEMA = {
    "title": "AchievementScore",
    "type": "object",
    "additionalProperties": False,
    "required": ["points", "rule_index", "rule_set_id", "reason"],
    "properties": {"points": _NUMBER, "rule_index": {"type": ["integer", "null"]}, "rule_set_id": _UUID,
                   "reason": _REASON},
}

MY_SCORE_SCHEMA = {
    "title": "StudentScore",
    "type": "object",
    "additionalProperties": False,
    "required": ["rule_set_id", "total", "items"],
    "properties": {"rule_set_id": _UUID, "total": _NUMBER, "items": {"type": "array", "items": {
        "type": "object", "additionalProperties": False,
        "required": ["achievement_id", "points", "rule_index", "reason"],
        "properties": {"achievement_id": _UUID, "points": _NUMBER, "rule_index": {"type": ["integer", "null"]},
                       "reason": _REASON}}}},
}

RATING_SCHEMA = {
    "title": "Rating",
    "type": "object",
    "additionalProperties": False,
    "required": ["rule_set_id", "org_unit_id", "top_share", "items"],
    "properties": {
        "rule_set_id": _UUID, "org_unit_id": _UUID, "top_share": _NUMBER,
        "items": {"type": "array", "items": {
            "title": "RatingRow",
            "type": "object", "additionalProperties": False,
            "required": ["rank", "student_id", "full_name", "org_unit_id", "points", "by_category", "counted",
                         "eligible"],
            "properties": {"rank": {"type": "integer"}, "student_id": _UUID, "full_name": {"type": "string"},
                           "org_unit_id": {"type": ["string", "null"], "format": "uuid"}, "points": _NUMBER,
                           "by_category": {"type": "object", "additionalProperties": _NUMBER},
                           "counted": {"type": "integer"}, "eligible": {"type": "boolean"}},
        }},
    },
}
