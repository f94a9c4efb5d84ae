"""Use cases of the achievement-types catalogue."""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError

from models import AchievementType
from service import audit
from service.context import RequestContext
from service.errors import Conflict, NotFound
from service.platform.database import transaction, violated_constraint

TYPE_FIELDS = ("slug", "name", "category", "is_active")


def type_json(achievement_type: AchievementType) -> dict[str, Any]:
    return {field: getattr(achievement_type, field) for field in TYPE_FIELDS}


async def list_types() -> list[dict[str, Any]]:
    return await AchievementType.all().order_by("category", "name", "slug").values(*TYPE_FIELDS)


async def create_type(ctx: RequestContext, slug: str, name: str, category: str, is_active: bool) -> dict[str, Any]:
    try:
        async with transaction() as tx:
            created = await AchievementType.create(using_db=tx, slug=slug, name=name, category=category,
                                                   is_active=is_active)
            await audit.record(tx, ctx, "achievement_type.created", target_type="achievement_type",
                               target_id=slug, details={"category": category, "is_active": is_active})
    except IntegrityError as exc:
        if violated_constraint(exc) != "achievement_types_pkey":
            raise
        raise Conflict("An achievement type with this slug already exists.", code="duplicate_type") from None
    return type_json(created)


async def update_type(ctx: RequestContext, slug: str, changes: dict[str, Any]) -> dict[str, Any]:
    async with transaction() as tx:
        found = await AchievementType.select_for_update().using_db(tx).get_or_none(slug=slug)
        if found is None:
            raise NotFound("No such achievement type.")
        before = type_json(found)
        diff = {k: [before[k], v] for k, v in changes.items() if before[k] != v}
        if not diff:
            return before
        for field, value in changes.items():
            setattr(found, field, value)
        await found.save(using_db=tx, update_fields=list(changes))
        await audit.record(tx, ctx, "achievement_type.updated", target_type="achievement_type", target_id=slug,
                           details=diff)
    return type_json(found)
