"""Levels, results and the scholarship rating (API.md "S").

A rule set scores each approved achievement dated within its period by the most specific rule
that matches it (a rule naming the type beats one naming the category; naming the level or the
result beats not naming them; ties go to the higher points, then the earlier rule), ``max_items``
caps how many of a student's achievements count under one rule (the earliest by date, then id),
and everything else scores 0 with a reason. Published rule sets never change, so a rating is
reproducible.

The rules are written twice on purpose, checked against each other by the tests: in Python for
one student's explanation (``explain``), and in SQL for a unit's rating (``RATING``), which must
aggregate thousands of students in the database rather than load their rows.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models import Achievement, AchievementType, Category, Level, OrgUnit, Result, RuleSet, Status
from models.enums import RuleSetStatus, ZeroReason, values
from service import audit
from service.context import CurrentUser, RequestContext
from service.errors import Conflict, NotFound, ValidationFailed
from service.platform.database import fetch, transaction
from service.university import Reach, unit_reach

CRITERIA = ("category", "type", "level", "result")


# --- the rules, in Python ----------------------------------------------------------------------------

def specificity(rule: Mapping[str, Any], index: int) -> tuple:
    """Higher sorts first: type, then category, then how many of level/result it names, then points."""
    named = sum(rule.get(key) is not None for key in ("level", "result"))
    return (rule.get("type") is not None, rule.get("category") is not None, named, rule["points"], -index)


def matches(rule: Mapping[str, Any], achievement: Mapping[str, Any]) -> bool:
    return all(rule.get(key) is None or rule[key] == str(achievement[key] or "") for key in CRITERIA)


def best_rule(rules: Sequence[Mapping[str, Any]], achievement: Mapping[str, Any]) -> int | None:
    candidates = [(specificity(rule, i), i) for i, rule in enumerate(rules) if matches(rule, achievement)]
    return max(candidates)[1] if candidates else None


@dataclass(frozen=True)
class Score:
    achievement_id: uuid.UUID
    points: float
    rule_index: int | None
    reason: ZeroReason | None

    def json(self) -> dict[str, Any]:
        return {"achievement_id": self.achievement_id, "points": _number(self.points),
                "rule_index": self.rule_index, "reason": self.reason}


def explain(rules: Sequence[Mapping[str, Any]], period: tuple[dt.date, dt.date],
            achievements: Sequence[Mapping[str, Any]]) -> list[Score]:
    """One student's achievements scored, each with the rule it fell under or why it scored 0."""
    scores: dict[uuid.UUID, Score] = {}
    counted: dict[int, int] = {}
    for achievement in sorted(achievements, key=lambda a: (a["date"], str(a["id"]))):
        if str(achievement["status"]) != Status.APPROVED:
            scores[achievement["id"]] = Score(achievement["id"], 0, None, ZeroReason.NOT_APPROVED)
            continue
        if not period[0] <= achievement["date"] <= period[1]:
            scores[achievement["id"]] = Score(achievement["id"], 0, None, ZeroReason.OUT_OF_PERIOD)
            continue
        index = best_rule(rules, achievement)
        if index is None:
            scores[achievement["id"]] = Score(achievement["id"], 0, None, ZeroReason.NO_RULE)
            continue
        cap = rules[index].get("max_items")
        counted[index] = counted.get(index, 0) + 1
        if cap is not None and counted[index] > cap:
            scores[achievement["id"]] = Score(achievement["id"], 0, index, ZeroReason.OVER_CAP)
        else:
            scores[achievement["id"]] = Score(achievement["id"], rules[index]["points"], index, None)
    return [scores[a["id"]] for a in achievements]


def eligible_count(points: Sequence[float], top_share: float) -> int:
    """How many of the (descending) ``points`` are eligible: the first ⌊top_share × n⌋, never
    splitting equal points (a tie group crossing the line is left out whole), never a zero."""
    k = math.floor(top_share * len(points) + 1e-9)
    if k <= 0:
        return 0
    if k < len(points) and points[k] == points[k - 1]:
        k = next((i for i in range(k - 1, -1, -1) if points[i] != points[k]), -1) + 1
    return sum(1 for p in points[:k] if p > 0)


def _number(value: Any) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


# --- the levels and results catalogues ---------------------------------------------------------------

def grade_json(entry: Level | Result) -> dict[str, Any]:
    body = {"slug": entry.slug, "name": entry.name, "is_active": entry.is_active}
    if isinstance(entry, Level):
        body["rank"] = entry.rank
    return body


async def list_grades(model: type[Level] | type[Result]) -> list[dict[str, Any]]:
    order = ("rank", "slug") if model is Level else ("slug",)
    return [grade_json(entry) for entry in await model.all().order_by(*order)]


async def create_grade(ctx: RequestContext, model: type[Level] | type[Result], data: dict[str, Any]) -> dict[str, Any]:
    name = model.__name__.lower()
    async with transaction() as tx:
        if await model.filter(slug=data["slug"]).using_db(tx).exists():
            raise Conflict(f"A {name} with this slug already exists.", code="duplicate_slug")
        entry = await model.create(using_db=tx, **data)
        await audit.record(tx, ctx, f"{name}.created", target_type=name, target_id=entry.slug)
    return grade_json(entry)


async def update_grade(ctx: RequestContext, model: type[Level] | type[Result], slug: str,
                       changes: dict[str, Any]) -> dict[str, Any]:
    name = model.__name__.lower()
    async with transaction() as tx:
        entry = await model.select_for_update().using_db(tx).get_or_none(slug=slug[:64])
        if entry is None:
            raise NotFound(f"No such {name}.")
        for field, value in changes.items():
            setattr(entry, field, value)
        if changes:
            await entry.save(using_db=tx, update_fields=list(changes))
            await audit.record(tx, ctx, f"{name}.updated", target_type=name, target_id=entry.slug, details=changes)
    return grade_json(entry)


# --- rule sets -----------------------------------------------------------------------------------------

def rule_set_json(rule_set: RuleSet) -> dict[str, Any]:
    return {"id": rule_set.id, "name": rule_set.name, "period_from": rule_set.period_from,
            "period_to": rule_set.period_to, "rules": rule_set.rules, "status": str(rule_set.status),
            "published_at": rule_set.published_at, "created_at": rule_set.created_at}


async def rule_errors(rules: list[dict[str, Any]], period_from: dt.date, period_to: dt.date) -> list[dict[str, str]]:
    errors = []
    if period_to < period_from:
        errors.append({"field": "period_to", "message": "must not be before period_from", "code": "invalid_period"})
    known = {
        "category": set(values(Category)),
        "type": set(await AchievementType.all().values_list("slug", flat=True)),
        "level": set(await Level.all().values_list("slug", flat=True)),
        "result": set(await Result.all().values_list("slug", flat=True)),
    }
    for i, rule in enumerate(rules):
        for key in CRITERIA:
            if rule.get(key) is not None and rule[key] not in known[key]:
                errors.append({"field": f"rules[{i}].{key}", "message": f"is not a known {key}",
                               "code": f"unknown_{key}"})
    return errors


async def save_rule_set(ctx: RequestContext, data: dict[str, Any], rule_set_id: uuid.UUID | None = None
                        ) -> dict[str, Any]:
    rules = [{k: v for k, v in rule.items() if v is not None} for rule in data["rules"]]
    errors = await rule_errors(rules, data["period_from"], data["period_to"])
    if errors:
        raise ValidationFailed(errors)
    async with transaction() as tx:
        if rule_set_id is None:
            rule_set = await RuleSet.create(using_db=tx, id=uuid.uuid4(), name=data["name"], rules=rules,
                                            period_from=data["period_from"], period_to=data["period_to"])
            action = "scoring.rule_set.created"
        else:
            rule_set = await RuleSet.select_for_update().using_db(tx).get_or_none(id=rule_set_id)
            if rule_set is None:
                raise NotFound("No such rule set.")
            if rule_set.status == RuleSetStatus.PUBLISHED:
                raise Conflict("A published rule set never changes: create a new one.", code="rule_set_published")
            rule_set.name, rule_set.rules = data["name"], rules
            rule_set.period_from, rule_set.period_to = data["period_from"], data["period_to"]
            await rule_set.save(using_db=tx, update_fields=["name", "rules", "period_from", "period_to"])
            action = "scoring.rule_set.updated"
        await audit.record(tx, ctx, action, target_type="rule_set", target_id=rule_set.id,
                           details={"rules": len(rules)})
    return rule_set_json(rule_set)


async def publish(ctx: RequestContext, rule_set_id: uuid.UUID) -> dict[str, Any]:
    async with transaction() as tx:
        rule_set = await RuleSet.select_for_update().using_db(tx).get_or_none(id=rule_set_id)
        if rule_set is None:
            raise NotFound("No such rule set.")
        if rule_set.status != RuleSetStatus.PUBLISHED:
            rule_set.status, rule_set.published_at = RuleSetStatus.PUBLISHED, dt.datetime.now(dt.UTC)
            await rule_set.save(using_db=tx, update_fields=["status", "published_at"])
            await audit.record(tx, ctx, "scoring.rule_set.published", target_type="rule_set", target_id=rule_set.id)
    return rule_set_json(rule_set)


async def visible_rule_set(user: CurrentUser, rule_set_id: uuid.UUID) -> RuleSet:
    """A rule set the caller may use: drafts are for staff only (404 for students)."""
    rule_set = await RuleSet.get_or_none(id=rule_set_id)
    if rule_set is None or (rule_set.status != RuleSetStatus.PUBLISHED and not user.is_staff):
        raise NotFound("No such rule set.")
    return rule_set


async def list_rule_sets(user: CurrentUser) -> list[dict[str, Any]]:
    rule_sets = RuleSet.all() if user.is_staff else RuleSet.filter(status=RuleSetStatus.PUBLISHED)
    return [rule_set_json(r) for r in await rule_sets.order_by("-created_at", "id")]


# --- scores ----------------------------------------------------------------------------------------------

SCORED_FIELDS = ("id", "status", "date", "category", "type", "level", "result")


async def my_score(user: CurrentUser, rule_set_id: uuid.UUID) -> dict[str, Any]:
    rule_set = await visible_rule_set(user, rule_set_id)
    mine = await Achievement.filter(owner_id=user.id).order_by("date", "id").values(*SCORED_FIELDS)
    scores = explain(rule_set.rules, (rule_set.period_from, rule_set.period_to), mine)
    return {"rule_set_id": rule_set.id, "total": _number(sum(s.points for s in scores)),
            "items": [s.json() for s in scores]}


async def achievement_score(user: CurrentUser, rule_set_id: uuid.UUID, owner_id: uuid.UUID,
                            achievement_id: uuid.UUID) -> dict[str, Any]:
    """The score of one achievement: caps depend on the owner's other achievements, so all of
    the owner's are scored (the caller's right to read it is checked by the caller)."""
    rule_set = await visible_rule_set(user, rule_set_id)
    theirs = await Achievement.filter(owner_id=owner_id).order_by("date", "id").values(*SCORED_FIELDS)
    score = next(s for s in explain(rule_set.rules, (rule_set.period_from, rule_set.period_to), theirs)
                 if s.achievement_id == achievement_id)
    return {"points": _number(score.points), "rule_index": score.rule_index, "rule_set_id": rule_set.id,
            "reason": score.reason}


# --- the rating, in SQL ------------------------------------------------------------------------------------

# $1 the rule set, $2 the units whose members are rated, $3 whether the university's own members
# (no group) are. One statement: the rules as a table, the most specific rule per achievement,
# the caps by row_number(), the totals per student (every student of the units, 0 included).
RATING = f"""
WITH rs AS (SELECT period_from, period_to, rules FROM rule_sets WHERE id = $1),
rules AS (
    SELECT (e.ord - 1)::int AS rule_index, e.rule->>'category' AS category, e.rule->>'type' AS type,
           e.rule->>'level' AS level, e.rule->>'result' AS result, (e.rule->>'points')::numeric AS points,
           (e.rule->>'max_items')::int AS max_items
    FROM rs, jsonb_array_elements(rs.rules) WITH ORDINALITY AS e(rule, ord)
),
students AS (
    SELECT id, full_name, org_unit_id FROM users
    WHERE role = 'student' AND (org_unit_id = ANY($2::uuid[]) OR ($3 AND org_unit_id IS NULL))
),
matched AS (
    SELECT a.id, a.owner_id, a.category, a.date, (
        SELECT ru.rule_index FROM rules ru
        WHERE (ru.category IS NULL OR ru.category = a.category) AND (ru.type IS NULL OR ru.type = a.type)
          AND (ru.level IS NULL OR ru.level = a.level) AND (ru.result IS NULL OR ru.result = a.result)
        ORDER BY (ru.type IS NOT NULL) DESC, (ru.category IS NOT NULL) DESC,
                 ((ru.level IS NOT NULL)::int + (ru.result IS NOT NULL)::int) DESC, ru.points DESC, ru.rule_index
        LIMIT 1) AS rule_index
    FROM achievements a JOIN students s ON s.id = a.owner_id, rs
    WHERE a.status = 'approved' AND a.date BETWEEN rs.period_from AND rs.period_to
),
scored AS (
    SELECT m.owner_id, m.category,
           CASE WHEN ru.max_items IS NULL OR row_number() OVER (PARTITION BY m.owner_id, m.rule_index
                ORDER BY m.date, m.id) <= ru.max_items THEN ru.points ELSE 0 END AS points
    FROM matched m JOIN rules ru ON ru.rule_index = m.rule_index
)
SELECT s.id, s.full_name, s.org_unit_id, coalesce(sum(sc.points), 0) AS points,
       count(sc.points) FILTER (WHERE sc.points > 0) AS counted,
       {", ".join(f"coalesce(sum(sc.points) FILTER (WHERE sc.category = '{c}'), 0) AS {c}" for c in values(Category))}
FROM students s LEFT JOIN scored sc ON sc.owner_id = s.id
GROUP BY s.id, s.full_name, s.org_unit_id
ORDER BY points DESC, s.full_name, s.id
"""


async def rating(user: CurrentUser, reach: Reach, rule_set_id: uuid.UUID, unit_id: uuid.UUID,
                 top_share: float) -> dict[str, Any]:
    rule_set = await visible_rule_set(user, rule_set_id)
    members = await unit_reach(reach, unit_id)
    rows = await fetch(RATING, rule_set.id, sorted(members.units), members.includes_root_members)
    points = [float(r["points"]) for r in rows]
    eligible = eligible_count(points, top_share)
    items = [{"rank": rank, "student_id": r["id"], "full_name": r["full_name"],
              "org_unit_id": r["org_unit_id"], "points": _number(r["points"]),
              "by_category": {c: _number(r[c]) for c in values(Category)}, "counted": r["counted"],
              "eligible": rank <= eligible}
             for rank, r in enumerate(rows, start=1)]
    return {"rule_set_id": rule_set.id, "org_unit_id": unit_id, "top_share": top_share, "items": items}


async def names_of_units() -> dict[uuid.UUID, str]:
    return dict(await OrgUnit.all().values_list("id", "name"))
