"""The university (API.md "O"): org units, membership, curator scopes, and the one decision of
whose achievements a member of staff reaches.

Scope is object-level authorisation. ``reach_of`` answers it for every route (get, lists with
``owner``, stats, exports, review, history, the queue): admins reach everyone, a curator the
students whose unit lies in the subtree of one of their scopes (the university's own members,
with no group, only through a scope on the university), a curator without scopes no one. It is
read on every request, so a scope change applies at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from models import CuratorScope, OrgUnit, OrgUnitKind, Role, User
from models.enums import PARENT_KIND
from service import audit
from service.context import CurrentUser, RequestContext
from service.errors import Conflict, NotFound, ValidationFailed
from service.platform.database import fetch, transaction

# The scope SQL reads the tree's closure (models.OrgUnitLink: every unit with each of its
# ancestors), so that a scope check is a few index probes inside the statement that needs it.
# SQL, not the ORM: these are fragments of the hot statements (tests.bench C1/C2).

# The units of the subtrees of units $1.
SUBTREE = "SELECT descendant_id AS id FROM org_unit_closure WHERE ancestor_id = ANY($1::uuid[])"
ROOT = "(SELECT id FROM org_units WHERE parent_id IS NULL)"


def scope_members(curator: str, columns: str = "u.id") -> str:
    """``columns`` of the users (``u``) whose unit lies in a subtree of curator ``curator``'s
    scopes (the university's own members, with no group, through a scope on the university).
    Two branches, not an OR, so that each is an index scan."""
    return (f"SELECT {columns} FROM users u WHERE u.org_unit_id IN (SELECT c.descendant_id FROM curator_scopes s "
            f"JOIN org_unit_closure c ON c.ancestor_id = s.org_unit_id WHERE s.user_id = {curator}) "
            f"UNION ALL SELECT {columns} FROM users u WHERE u.org_unit_id IS NULL AND EXISTS (SELECT 1 FROM "
            f"curator_scopes s WHERE s.user_id = {curator} AND s.org_unit_id = {ROOT})")


def scope_covers(curator: str, owner: str) -> str:
    """Whether curator ``curator``'s scopes cover user ``owner``, who exists (a boolean
    expression: index probes, measured cheaper than a join through users)."""
    return ("EXISTS (SELECT 1 FROM curator_scopes s JOIN org_unit_closure c ON c.ancestor_id = s.org_unit_id "
            f"WHERE s.user_id = {curator} AND c.descendant_id = "
            f"coalesce((SELECT org_unit_id FROM users WHERE id = {owner}), {ROOT}))")


# The units curator $1's scopes cover, the root marked.
SCOPE_SUBTREE = (f"SELECT DISTINCT c.descendant_id AS id, c.descendant_id = {ROOT} AS is_root FROM curator_scopes s "
                 "JOIN org_unit_closure c ON c.ancestor_id = s.org_unit_id WHERE s.user_id = $1")
COVERS = f"SELECT EXISTS (SELECT 1 FROM users WHERE id = $2) AND {scope_covers('$1', '$2')} AS covered"


async def curator_covers(curator_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return (await fetch(COVERS, curator_id, user_id))[0]["covered"]


async def in_reach(user: CurrentUser, owner_id: uuid.UUID | None) -> bool:
    """Whether a curator's scope covers the owner (one query, for curators only: students see
    their own, admins everyone)."""
    if owner_id is None or owner_id == user.id or user.role != Role.CURATOR:
        return True
    return await curator_covers(user.id, owner_id)


@dataclass(frozen=True)
class Reach:
    """Whose achievements a member of staff reaches: everyone, the members of ``units``
    (members of no group belong to the university, the ``root``), or whoever curator
    ``curator_id``'s scopes cover (looked up inside the statement that needs it)."""

    everyone: bool = False
    units: frozenset[uuid.UUID] = frozenset()
    root: uuid.UUID | None = None
    curator_id: uuid.UUID | None = None

    @property
    def includes_root_members(self) -> bool:
        return self.everyone or (self.root is not None and self.root in self.units)


EVERYONE = Reach(everyone=True)


async def reach_of(user: CurrentUser) -> Reach:
    """Admins reach everyone; a curator the subtrees of their scopes (no scope: no one)."""
    if user.role == Role.ADMIN:
        return EVERYONE
    if user.role != Role.CURATOR:
        return Reach()
    return Reach(curator_id=user.id)


async def scope_units(curator_id: uuid.UUID) -> Reach:
    """A curator's reach with its units spelled out."""
    rows = await fetch(SCOPE_SUBTREE, curator_id)
    root = next((row["id"] for row in rows if row["is_root"]), None)
    return Reach(units=frozenset(row["id"] for row in rows), root=root)


async def unit_reach(reach: Reach, unit_id: uuid.UUID) -> Reach:
    """The members of ``unit_id``'s subtree, if the caller reaches the unit (404 otherwise, as
    for a unit that does not exist)."""
    if reach.curator_id is not None:
        reach = await scope_units(reach.curator_id)
    unit = await OrgUnit.get_or_none(id=unit_id)
    if unit is None or not (reach.everyone or unit_id in reach.units):
        raise NotFound("No such org unit.")
    units = frozenset(row["id"] for row in await fetch(SUBTREE, [unit_id]))
    return Reach(units=units, root=unit_id if unit.kind == OrgUnitKind.UNIVERSITY else None)


# --- org units ------------------------------------------------------------------------------------

def unit_json(unit: OrgUnit) -> dict[str, Any]:
    return {"id": unit.id, "name": unit.name, "kind": str(unit.kind), "parent_id": unit.parent_id}


_KIND_ORDER = {OrgUnitKind.UNIVERSITY: 0, OrgUnitKind.FACULTY: 1, OrgUnitKind.GROUP: 2}


async def list_units() -> list[dict[str, Any]]:
    units = await OrgUnit.all().order_by("name", "id")
    return [unit_json(u) for u in sorted(units, key=lambda u: _KIND_ORDER[u.kind])]


async def create_unit(ctx: RequestContext, name: str, kind: OrgUnitKind, parent_id: uuid.UUID | None
                      ) -> dict[str, Any]:
    errors = []
    if kind == OrgUnitKind.UNIVERSITY:
        errors.append({"field": "kind", "message": "there is one university; add faculties and groups",
                       "code": "invalid_kind"})
    async with transaction() as tx:
        parent = await OrgUnit.get_or_none(id=parent_id, using_db=tx) if parent_id else None
        if kind in PARENT_KIND and (parent is None or parent.kind != PARENT_KIND[kind]):
            errors.append({"field": "parent_id", "code": "invalid_parent",
                           "message": f"a {kind}'s parent must be a {PARENT_KIND[kind]}"})
        if errors:
            raise ValidationFailed(errors)
        unit = await OrgUnit.create(using_db=tx, id=uuid.uuid4(), name=name, kind=kind, parent_id=parent.id)
        await audit.record(tx, ctx, "org_unit.created", target_type="org_unit", target_id=unit.id,
                           details={"kind": str(kind), "parent_id": str(parent.id), "name": name})
    return unit_json(unit)


async def rename_unit(ctx: RequestContext, unit_id: uuid.UUID, name: str) -> dict[str, Any]:
    async with transaction() as tx:
        unit = await OrgUnit.select_for_update().using_db(tx).get_or_none(id=unit_id)
        if unit is None:
            raise NotFound("No such org unit.")
        if unit.name != name:
            before, unit.name = unit.name, name
            await unit.save(using_db=tx, update_fields=["name"])
            await audit.record(tx, ctx, "org_unit.updated", target_type="org_unit", target_id=unit.id,
                               details={"name": [before, name]})
    return unit_json(unit)


async def delete_unit(ctx: RequestContext, unit_id: uuid.UUID) -> None:
    async with transaction() as tx:
        unit = await OrgUnit.select_for_update().using_db(tx).get_or_none(id=unit_id)
        if unit is None:
            raise NotFound("No such org unit.")
        if unit.kind == OrgUnitKind.UNIVERSITY:
            raise Conflict("The university itself cannot be deleted.", code="unit_in_use")
        if await OrgUnit.filter(parent_id=unit.id).using_db(tx).exists() or \
                await User.filter(org_unit_id=unit.id).using_db(tx).exists():
            raise Conflict("The unit still has members or sub-units.", code="unit_in_use")
        scopes = await CuratorScope.filter(org_unit_id=unit.id).using_db(tx).values_list("user_id", flat=True)
        await unit.delete(using_db=tx)  # its curator scopes go with it
        await audit.record(tx, ctx, "org_unit.deleted", target_type="org_unit", target_id=unit.id,
                           details={"name": unit.name, "kind": str(unit.kind),
                                    "scopes_removed_from": sorted(str(u) for u in scopes)})


async def membership_error(unit_id: uuid.UUID | None) -> dict[str, str] | None:
    """A member belongs to a group (or, with null, to the university itself)."""
    if unit_id is None:
        return None
    unit = await OrgUnit.get_or_none(id=unit_id)
    if unit is None or unit.kind != OrgUnitKind.GROUP:
        return {"field": "org_unit_id", "message": "must be a group (or null for the university)",
                "code": "invalid_org_unit"}
    return None


# --- curator scopes ---------------------------------------------------------------------------------

async def scopes_of(user_id: uuid.UUID) -> dict[str, Any]:
    if not await User.filter(id=user_id).exists():
        raise NotFound("No such user.")
    units = await CuratorScope.filter(user_id=user_id).order_by("org_unit_id").values_list("org_unit_id", flat=True)
    return {"org_unit_ids": units}


async def set_scopes(ctx: RequestContext, user_id: uuid.UUID, unit_ids: Iterable[uuid.UUID]) -> dict[str, Any]:
    wanted = list(dict.fromkeys(unit_ids))
    async with transaction() as tx:
        user = await User.select_for_update().using_db(tx).get_or_none(id=user_id)
        if user is None:
            raise NotFound("No such user.")
        if user.role != Role.CURATOR:
            raise Conflict("Only curators have scopes.", code="not_a_curator")
        known = set(await OrgUnit.filter(id__in=wanted).using_db(tx).values_list("id", flat=True))
        errors = [{"field": f"org_unit_ids[{i}]", "message": "is not an org unit", "code": "unknown_org_unit"}
                  for i, unit in enumerate(wanted) if unit not in known]
        if errors:
            raise ValidationFailed(errors)
        before = set(await CuratorScope.filter(user_id=user_id).using_db(tx).values_list("org_unit_id", flat=True))
        if before != set(wanted):
            await CuratorScope.filter(user_id=user_id, org_unit_id__in=list(before - set(wanted))).using_db(
                tx).delete()
            await CuratorScope.bulk_create([CuratorScope(user_id=user_id, org_unit_id=unit)
                                            for unit in wanted if unit not in before], using_db=tx)
            await audit.record(tx, ctx, "admin.user.scopes_updated", target_type="user", target_id=user_id,
                               details={"added": sorted(str(u) for u in set(wanted) - before),
                                        "removed": sorted(str(u) for u in before - set(wanted))})
    return {"org_unit_ids": sorted(wanted, key=str)}
