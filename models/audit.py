from tortoise import fields
from tortoise.models import Model


class AuditEvent(Model):
    """Append-only: a trigger created by the migrations refuses UPDATE and DELETE."""

    id = fields.UUIDField(primary_key=True)
    occurred_at = fields.DatetimeField()
    request_id = fields.CharField(max_length=128, null=True)
    actor_id = fields.UUIDField(null=True)
    ip = fields.CharField(max_length=64, null=True)
    action = fields.CharField(max_length=64)
    target_type = fields.CharField(max_length=32, null=True)
    target_id = fields.CharField(max_length=128, null=True)
    outcome = fields.CharField(max_length=16)
    details = fields.JSONField(default=dict)

    class Meta:
        table = "audit_events"
