"""What users do with achievements: one function per use case, typed inputs (the current user,
the fields, the preconditions), one transaction each with its audit row, domain errors out.
Nothing here knows HTTP."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from tortoise.exceptions import IntegrityError

from models import Achievement, Decision, Review, Role, Status, User
from service import audit, credentials
from service.achievements import queries
from service.achievements.queries import COLUMNS, DISPLAY, existing_id
from service.achievements.rules import CONTENT_FIELDS, Preconditions, authorize, denied, etag_of, list_owner
from service.context import CurrentUser, RequestContext
from service.errors import Conflict, Forbidden, NotFound, QuotaExceeded, ValidationFailed
from service.platform.database import connection, fetch, transaction, violated_constraint
from service.university import Reach, in_reach, reach_of, unit_reach

DEDUP = "achievements_dedup_key"  # the unique index of the duplicate rule


def _duplicate(existing: uuid.UUID | None) -> Conflict:
    return Conflict("You already recorded this achievement.", code="duplicate_achievement",
                    existing_id=existing)


async def _authorized(user: CurrentUser, owner_id: uuid.UUID | None, action: str) -> None:
    authorize(user, owner_id, action, in_reach=await in_reach(user, owner_id))


async def list_scope(user: CurrentUser, owner: uuid.UUID | str | None, org_unit: uuid.UUID | None = None
                     ) -> tuple[uuid.UUID | None, Reach | None]:
    """Whose achievements a list, export, stats or the queue covers: (owner id or None for
    several, the reach that limits them). A student sees their own only (403 for ``owner`` or
    ``org_unit``); a curator names a user in scope or gets the same 404 as for a missing one."""
    owner_id = list_owner(user, owner)
    if org_unit is not None:
        if not user.is_staff:
            raise denied(Forbidden("Only curators and admins may count a unit's achievements."), "org_unit")
        reach = await unit_reach(await reach_of(user), org_unit)
        return (owner_id if owner is not None else None), reach
    if owner_id is None:
        return None, await reach_of(user)
    if owner_id != user.id and not await in_reach(user, owner_id):
        raise denied(NotFound("No such user."), "out_of_scope")
    return owner_id, None


async def get(user: CurrentUser, achievement_id: uuid.UUID) -> Mapping[str, Any]:
    if user.role == Role.CURATOR:  # the row and the scope check in one statement
        row = await queries.by_id_for_curator(achievement_id, user.id)
        authorize(user, row["owner_id"] if row else None, "read", in_reach=bool(row and row["in_reach"]))
        return row
    row = await queries.by_id(achievement_id)
    authorize(user, row["owner_id"] if row else None, "read")
    return row


async def reviews(user: CurrentUser, achievement_id: uuid.UUID) -> list[dict[str, Any]]:
    """The review history, newest first, for whoever may read the achievement."""
    owner = await Achievement.filter(id=achievement_id).values_list("owner_id", flat=True)
    await _authorized(user, owner[0] if owner else None, "read")
    history = await Review.filter(achievement_id=achievement_id).order_by("-reviewed_at", "-version").values(
        "decision", "comment", "reviewer_id", "reviewed_at", "version")
    names = dict(await User.filter(id__in={r["reviewer_id"] for r in history}).values_list("id", "full_name"))
    return [{"decision": str(r["decision"]), "comment": r["comment"], "reviewer_id": r["reviewer_id"],
             "reviewer_name": names.get(r["reviewer_id"]), "reviewed_at": r["reviewed_at"],
             "version": r["version"]} for r in history]


# SQL, the measured hot path (tests.bench S3): one statement is one atomic write, so the
# achievement and its audit row commit together without a transaction's round trips. The
# category comes from the active type, the quota is checked against the trigger-kept counts and
# the duplicate rule applied by the unique index. (Creates of one user at the same moment may
# each see the count before the others: the quota can be passed by at most that many rows,
# which the per-user request limit and the pool size bound.)
CREATE = f"""
WITH created AS (
    INSERT INTO achievements (id, owner_id, title, type, category, date, proof_url, description, level, result)
    SELECT $1, $2, $3, t.slug, t.category, $5, $6, $7, $12::text, $13::text FROM achievement_types t
    WHERE t.slug = $4 AND t.is_active
    AND ($12::text IS NULL OR EXISTS (SELECT 1 FROM levels WHERE slug = $12 AND is_active))
    AND ($13::text IS NULL OR EXISTS (SELECT 1 FROM results WHERE slug = $13 AND is_active))
    AND (SELECT coalesce(sum(n), 0) FROM achievement_counts WHERE owner_id = $2) < $8
    ON CONFLICT (owner_id, type, date, title_key) DO NOTHING RETURNING {COLUMNS}
), recorded AS (
    INSERT INTO audit_events (id, request_id, actor_id, ip, action, target_type, target_id, outcome)
    SELECT $9, $10, $2, $11, 'achievement.created', 'achievement', id::text, 'success' FROM created
)
SELECT a.*, {DISPLAY} FROM created a
"""


async def create(ctx: RequestContext, user: CurrentUser, data: dict[str, Any], quota: int) -> Mapping[str, Any]:
    rows = await fetch(CREATE, uuid.uuid4(), user.id, data["title"], data["type"], data["date"],
                       data.get("proof_url"), data.get("description"), quota, uuid.uuid4(), ctx.request_id, ctx.ip,
                       data.get("level"), data.get("result"))
    if rows:
        row = rows[0]
        audit.log_line(ctx, "achievement.created", target_type="achievement", target_id=row["id"])
        return row
    errors = await queries.type_errors({"type": data["type"]}) + await queries.grade_errors(data)
    if errors:
        raise ValidationFailed(errors)
    existing = await existing_id(connection(), user.id, data["type"], data["date"], data["title"])
    if existing is not None:
        raise _duplicate(existing)
    raise QuotaExceeded(quota)


async def _locked(tx, achievement_id: uuid.UUID) -> Achievement | None:
    return await Achievement.select_for_update().using_db(tx).get_or_none(id=achievement_id)


async def update(ctx: RequestContext, user: CurrentUser, achievement_id: uuid.UUID, changes: dict[str, Any],
                 preconditions: Preconditions) -> Mapping[str, Any]:
    """Apply ``changes`` (the writable fields to set) for the owner. A change of content puts a
    reviewed achievement back to pending; its review history stays. Returns the row as read
    after the commit (with its display data)."""
    await _update(ctx, user, achievement_id, changes, preconditions)
    return await queries.by_id(achievement_id)


async def _update(ctx: RequestContext, user: CurrentUser, achievement_id: uuid.UUID, changes: dict[str, Any],
                  preconditions: Preconditions) -> None:
    try:
        async with transaction() as tx:
            achievement = await _locked(tx, achievement_id)
            await _authorized(user, achievement.owner_id if achievement else None, "edit")
            preconditions.check(etag_of(achievement.id, achievement.version))
            changed = [f for f in CONTENT_FIELDS if f in changes and changes[f] != getattr(achievement, f)]
            if not changed:
                return
            grade_changes = {k: changes[k] for k in ("level", "result") if k in changed}
            errors = await queries.grade_errors(grade_changes)
            if errors:
                raise ValidationFailed(errors)
            if "type" in changed:
                errors = await queries.type_errors({"type": changes["type"]}, current_type=achievement.type)
                if errors:
                    raise ValidationFailed(errors)
                achievement.category = (await queries.categories_of_active_types()).get(
                    changes["type"], achievement.category)
            if {"title", "type", "date"} & set(changed):
                new = {f: changes.get(f, getattr(achievement, f)) for f in ("type", "date", "title")}
                existing = await existing_id(tx, user.id, new["type"], new["date"], new["title"])
                if existing is not None and existing != achievement.id:
                    raise _duplicate(existing)
            previous = achievement.status
            for name in changed:
                setattr(achievement, name, changes[name])
            achievement.status = Status.PENDING
            achievement.review_decision = achievement.review_comment = None
            achievement.reviewer_id = achievement.reviewed_at = None
            achievement.version += 1  # the row is locked: no concurrent increment
            await achievement.save(using_db=tx, update_fields=[
                *changed, "category", "status", "review_decision", "review_comment", "reviewer_id",
                "reviewed_at", "version", "updated_at"])
            details: dict[str, Any] = {"fields": changed}
            if previous != Status.PENDING:
                details["status"] = [str(previous), "pending"]
            if previous == Status.APPROVED:  # what the credentials vouched for is no longer it
                details["credentials_revoked"] = await credentials.revoke(achievement.id, using_db=tx)
            await audit.record(tx, ctx, "achievement.updated", target_type="achievement",
                               target_id=achievement.id, details=details)
    except IntegrityError as exc:
        if violated_constraint(exc) != DEDUP:
            raise
        raise _duplicate(None) from None


async def delete(ctx: RequestContext, user: CurrentUser, achievement_id: uuid.UUID,
                 preconditions: Preconditions) -> None:
    async with transaction() as tx:
        achievement = await _locked(tx, achievement_id)
        await _authorized(user, achievement.owner_id if achievement else None, "delete")
        preconditions.check(etag_of(achievement.id, achievement.version))
        await achievement.delete(using_db=tx)
        await credentials.revoke(achievement.id, using_db=tx)
        await audit.record(tx, ctx, "achievement.deleted", target_type="achievement", target_id=achievement.id,
                           details={"owner_id": str(achievement.owner_id), "title": achievement.title[:200]})


async def review(ctx: RequestContext, user: CurrentUser, achievement_id: uuid.UUID, decision: Decision,
                 comment: str | None, preconditions: Preconditions) -> dict[str, Any]:
    """Judge the version the reviewer saw: If-Match is required (428 without it)."""
    async with transaction() as tx:
        achievement = await _locked(tx, achievement_id)
        await _authorized(user, achievement.owner_id if achievement else None, "review")
        preconditions.check(etag_of(achievement.id, achievement.version), require_match=True)
        # The history keeps every decision with the version it judged; edits never erase it.
        await Review.create(using_db=tx, id=uuid.uuid4(), achievement_id=achievement.id, decision=decision,
                            comment=comment, reviewer_id=user.id, version=achievement.version)
        previous = achievement.status
        if previous == Status.APPROVED and decision == Decision.REJECTED:
            await credentials.revoke(achievement.id, using_db=tx)
        achievement.status = Status(decision)
        achievement.review_decision = decision
        achievement.review_comment = comment
        achievement.reviewer_id = user.id
        achievement.reviewed_at = dt.datetime.now(dt.UTC)
        achievement.version += 1
        await achievement.save(using_db=tx, update_fields=[
            "status", "review_decision", "review_comment", "reviewer_id", "reviewed_at", "version", "updated_at"])
        await audit.record(tx, ctx, "achievement.reviewed", target_type="achievement", target_id=achievement.id,
                           details={"decision": str(decision), "status": [str(previous), str(decision)],
                                    "owner_id": str(achievement.owner_id)})
    return await queries.by_id(achievement.id)


async def create_batch(ctx: RequestContext, user: CurrentUser, items: list[dict[str, Any]],
                       quota: int) -> list[uuid.UUID]:
    """All-or-nothing import: one validation pass, one duplicate query, one bulk insert."""
    errors = await queries.type_errors({f"items[{i}].type": item["type"] for i, item in enumerate(items)})
    for i, item in enumerate(items):
        errors += await queries.grade_errors(item, prefix=f"items[{i}].")
    if errors:
        raise ValidationFailed(errors)
    categories = await queries.categories_of_active_types()
    try:
        async with transaction() as tx:
            # One import at a time per user, so the quota holds against concurrent imports.
            await tx.execute_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [str(user.id)])
            duplicates, existing = await _batch_duplicates(tx, user.id, items)
            if duplicates:
                raise Conflict("Some items already exist or repeat each other; nothing was imported.",
                               code="duplicate_achievement", duplicates=sorted(duplicates),
                               existing_ids=[existing[i] for i in sorted(existing)])
            held = await tx.execute_query_dict(
                "SELECT coalesce(sum(n), 0) AS n FROM achievement_counts WHERE owner_id = $1", [user.id])
            if held[0]["n"] + len(items) > quota:
                raise QuotaExceeded(quota)
            created = [Achievement(id=uuid.uuid4(), owner_id=user.id, title=item["title"], type=item["type"],
                                   category=categories[item["type"]], date=item["date"],
                                   level=item.get("level"), result=item.get("result"),
                                   proof_url=item.get("proof_url"), description=item.get("description"))
                       for item in items]
            await Achievement.bulk_create(created, batch_size=1000, using_db=tx)
            await audit.record(tx, ctx, "achievement.batch_created", target_type="user", target_id=user.id,
                               details={"count": len(items)})
    except IntegrityError as exc:  # a concurrent single create won a race: nothing was imported
        if violated_constraint(exc) != DEDUP:
            raise
        raise Conflict("Some items were recorded concurrently; nothing was imported.",
                       code="duplicate_achievement", duplicates=[]) from None
    return [a.id for a in created]


async def _batch_duplicates(tx, owner_id: uuid.UUID, items: list[dict[str, Any]]
                            ) -> tuple[set[int], dict[int, uuid.UUID]]:
    """The indexes of items that repeat each other or an achievement of the owner (with its
    id). SQL: keys by the database's own case rule (lower() on title_key; Python's differs,
    e.g. for the final sigma) in one statement over the whole batch."""
    rows = await tx.execute_query_dict(
        "SELECT t.idx, lower(btrim(t.title)) AS title_key, a.id AS existing FROM "
        "unnest($2::text[], $3::date[], $4::text[], $5::int[]) AS t(type, date, title, idx) "
        "LEFT JOIN achievements a ON a.owner_id = $1 AND a.type = t.type AND a.date = t.date "
        "AND a.title_key = lower(btrim(t.title)) ORDER BY t.idx",
        [owner_id, [i["type"] for i in items], [i["date"] for i in items], [i["title"] for i in items],
         list(range(len(items)))])
    first_seen: dict[tuple, int] = {}
    duplicates: set[int] = set()
    existing: dict[int, uuid.UUID] = {}
    for row in rows:
        index = row["idx"]
        key = (items[index]["type"], items[index]["date"], row["title_key"])
        if row["existing"] is not None:
            existing[index] = row["existing"]
        if key in first_seen:
            duplicates.update((first_seen[key], index))
        else:
            first_seen[key] = index
    return duplicates | set(existing), existing
