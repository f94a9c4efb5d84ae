from tortoise import fields
from tortoise.models import Model


class User(Model):
    id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=100)
    full_name = fields.CharField(max_length=200)
    role = fields.CharField(max_length=16, default="student")
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users"

    @property
    def is_staff(self) -> bool:
        return self.role in ("curator", "admin")


class Session(Model):
    """One login: the refresh-token family and what revokes it."""

    id = fields.UUIDField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="sessions", on_delete=fields.CASCADE)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=40, null=True)

    class Meta:
        table = "sessions"


class RefreshToken(Model):
    """Hash of one refresh token of a session; used tokens are kept to detect reuse."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    session = fields.ForeignKeyField("models.Session", related_name="tokens", on_delete=fields.CASCADE)
    created_at = fields.DatetimeField(auto_now_add=True)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_tokens"
