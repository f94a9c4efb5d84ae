from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.enums import RuleSetStatus, check_in


class Level(Model):
    """How wide an event was (faculty … international); a higher rank is wider."""

    slug = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=200)
    rank = fields.IntField()
    is_active = fields.BooleanField(default=True, db_default=SqlDefault("true"))
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))

    class Meta:
        table = "levels"


class Result(Model):
    """What the student achieved at the event (winner, prize, participant)."""

    slug = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=200)
    is_active = fields.BooleanField(default=True, db_default=SqlDefault("true"))
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))

    class Meta:
        table = "results"


class RuleSet(Model):
    """Scoring rules for a period (a scholarship round). Immutable once published: a change is
    a new rule set, so a published rating can always be reproduced."""

    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    period_from = fields.DateField()
    period_to = fields.DateField()
    # [{"category"?, "type"?, "level"?, "result"?, "points", "max_items"?}, ...]: read as a table
    # by the rating's SQL (jsonb_array_elements), in the order given (rule_index).
    rules = fields.JSONField()
    status = fields.CharEnumField(RuleSetStatus, max_length=16, default=RuleSetStatus.DRAFT,
                                  db_default=SqlDefault("'draft'"), description=None)
    published_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))

    class Meta:
        table = "rule_sets"
        constraints = (
            CheckConstraint(check=check_in("status", RuleSetStatus), name="rule_sets_status_check"),
            CheckConstraint(check="period_from <= period_to", name="rule_sets_period_check"),
        )
