from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.models import Model


class CredentialStatus(Model):
    """A credential's place in the revocation status list (its id is the bit's index), per
    achievement version. No foreign key: a deleted achievement's credentials stay revoked."""

    id = fields.IntField(primary_key=True)
    achievement_id = fields.UUIDField()
    version = fields.IntField()
    issued_at = fields.DatetimeField(db_default=SqlDefault("now()"))
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "credential_statuses"
        unique_together = (("achievement_id", "version"),)
