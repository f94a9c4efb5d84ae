from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.enums import Outcome, check_in


class AuditEvent(Model):
    """Append-only: triggers created by the migrations refuse UPDATE, DELETE and TRUNCATE."""

    id = fields.UUIDField(primary_key=True)
    # clock_timestamp(): events of one transaction keep their order.
    occurred_at = fields.DatetimeField(db_default=SqlDefault("clock_timestamp()"))
    request_id = fields.CharField(max_length=128, null=True)
    actor_id = fields.UUIDField(null=True)
    ip = fields.CharField(max_length=64, null=True)
    action = fields.CharField(max_length=64)
    target_type = fields.CharField(max_length=32, null=True)
    target_id = fields.CharField(max_length=128, null=True)
    outcome = fields.CharEnumField(Outcome, max_length=16, description=None)
    details = fields.JSONField(default=dict, db_default=SqlDefault("'{}'::jsonb"))

    class Meta:
        table = "audit_events"
        # Its indexes are newest-first (occurred_at DESC), which a model index cannot say:
        # the migration creates them with SQL.
        constraints = (CheckConstraint(check=check_in("outcome", Outcome), name="audit_events_outcome_check"),)
