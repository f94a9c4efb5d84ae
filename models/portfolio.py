from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.indexes import Index
from tortoise.models import Model


class ShareLink(Model):
    """A capability URL to a student's verified achievements. The token is shown once and
    only its SHA-256 is kept."""

    id = fields.UUIDField(primary_key=True)
    owner = fields.ForeignKeyField("models.User", related_name="share_links", on_delete=fields.CASCADE)
    label = fields.CharField(max_length=200)
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "share_links"
        indexes = (Index(fields=("owner_id", "created_at"), name="share_links_owner_idx"),)


class ShareLinkAccess(Model):
    """One view of a shared portfolio: when, and a keyed hash of the viewer's IP (never the IP)."""

    id = fields.BigIntField(primary_key=True)
    link = fields.ForeignKeyField("models.ShareLink", related_name="accesses", on_delete=fields.CASCADE)
    at = fields.DatetimeField(db_default=SqlDefault("now()"))
    ip_hash = fields.CharField(max_length=64)

    class Meta:
        table = "share_link_accesses"
        indexes = (Index(fields=("link_id", "at"), name="share_link_accesses_link_idx"),)
