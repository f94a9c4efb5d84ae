from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.enums import Decision, OrgUnitKind, check_in


class OrgUnit(Model):
    """The university's structure: one root (created by a migration) → faculties → groups."""

    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    kind = fields.CharEnumField(OrgUnitKind, max_length=16, description=None)
    parent = fields.ForeignKeyField("models.OrgUnit", related_name="children", null=True,
                                    on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))

    class Meta:
        table = "org_units"
        indexes = (Index(fields=("parent_id",), name="org_units_parent_idx"),)
        constraints = (
            CheckConstraint(check=check_in("kind", OrgUnitKind), name="org_units_kind_check"),
            # Only the university has no parent (one university: a unique index in the migration).
            CheckConstraint(check="(kind = 'university') = (parent_id IS NULL)", name="org_units_root_check"),
        )


class OrgUnitLink(Model):
    """The tree's closure: a row for every unit and each of its ancestors, itself included
    (depth 0). "The members of a subtree" is then one indexed join instead of a recursive walk
    in every statement that checks a curator's scope. Kept by a trigger on org_units (see the
    migration): units are never moved, and a unit's rows go with it (ON DELETE CASCADE)."""

    id = fields.BigIntField(primary_key=True)
    ancestor = fields.ForeignKeyField("models.OrgUnit", related_name="descendant_links", on_delete=fields.CASCADE)
    descendant = fields.ForeignKeyField("models.OrgUnit", related_name="ancestor_links", on_delete=fields.CASCADE)
    depth = fields.SmallIntField()

    class Meta:
        table = "org_unit_closure"
        unique_together = (("ancestor_id", "descendant_id"),)
        indexes = (Index(fields=("descendant_id", "ancestor_id"), name="org_unit_closure_descendant_idx"),)
        constraints = (CheckConstraint(check="depth >= 0", name="org_unit_closure_depth_check"),)


class CuratorScope(Model):
    """A unit a curator is responsible for; it covers the unit's whole subtree."""

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="scopes", on_delete=fields.CASCADE)
    org_unit = fields.ForeignKeyField("models.OrgUnit", related_name="curator_scopes", on_delete=fields.CASCADE)

    class Meta:
        table = "curator_scopes"
        unique_together = (("user_id", "org_unit_id"),)


class Review(Model):
    """Every decision on an achievement, kept when the achievement is edited back to pending."""

    id = fields.UUIDField(primary_key=True)
    achievement = fields.ForeignKeyField("models.Achievement", related_name="reviews", on_delete=fields.CASCADE)
    decision = fields.CharEnumField(Decision, max_length=16, description=None)
    comment = fields.TextField(null=True)
    reviewer_id = fields.UUIDField()
    reviewed_at = fields.DatetimeField(db_default=SqlDefault("now()"))
    version = fields.IntField()  # the version that was judged

    class Meta:
        table = "reviews"
        indexes = (Index(fields=("achievement_id", "reviewed_at"), name="reviews_achievement_idx"),)
        constraints = (CheckConstraint(check=check_in("decision", Decision), name="reviews_decision_check"),)
