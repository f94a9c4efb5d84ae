"""Use cases of the achievement-types catalogue."""

from __future__ import annotations

from typing import Any

from service import audit
from service.context import RequestContext
from service.database import connection, transaction
from service.errors import Conflict, NotFound

TYPE_COLUMNS = "slug, name, category, is_active"


async def list_types() -> list[dict[str, Any]]:
    return await connection().execute_query_dict(
        f"SELECT {TYPE_COLUMNS} FROM achievement_types ORDER BY category, name, slug")


async def create_type(ctx: RequestContext, slug: str, name: str, category: str, is_active: bool) -> dict[str, Any]:
    async with transaction() as conn:
        rows = await conn.execute_query_dict(
            f"INSERT INTO achievement_types (slug, name, category, is_active) VALUES ($1, $2, $3, $4) "
            f"ON CONFLICT (slug) DO NOTHING RETURNING {TYPE_COLUMNS}", [slug, name, category, is_active])
        if not rows:
            raise Conflict("An achievement type with this slug already exists.")
        await audit.record(conn, ctx, "achievement_type.created", target_type="achievement_type",
                           target_id=slug, details={"category": category, "is_active": is_active})
    return rows[0]


async def update_type(ctx: RequestContext, slug: str, changes: dict[str, Any]) -> dict[str, Any]:
    async with transaction() as conn:
        rows = await conn.execute_query_dict(
            f"SELECT {TYPE_COLUMNS} FROM achievement_types WHERE slug = $1 FOR UPDATE", [slug])
        if not rows:
            raise NotFound("No such achievement type.")
        before = rows[0]
        after = {**before, **changes}
        if after == before:
            return before
        rows = await conn.execute_query_dict(
            f"UPDATE achievement_types SET name = $2, is_active = $3 WHERE slug = $1 RETURNING {TYPE_COLUMNS}",
            [slug, after["name"], after["is_active"]])
        await audit.record(conn, ctx, "achievement_type.updated", target_type="achievement_type", target_id=slug,
                           details={k: [before[k], after[k]] for k in changes if before[k] != after[k]})
    return rows[0]
