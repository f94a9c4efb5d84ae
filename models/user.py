from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.enums import STAFF_ROLES, Role, check_in


class User(Model):
    id = fields.UUIDField(primary_key=True)
    # Normalised to lower case (a CHECK keeps it so); PostgreSQL names the unique index
    # users_email_key, which is how a taken email is recognised.
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=100)
    full_name = fields.CharField(max_length=200)
    role = fields.CharEnumField(Role, max_length=16, default=Role.STUDENT, db_default=SqlDefault("'student'"),
                                description=None)
    is_active = fields.BooleanField(default=True, db_default=SqlDefault("true"))
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))
    updated_at = fields.DatetimeField(auto_now=True, db_default=SqlDefault("now()"))
    # The student's group (null: the university itself). A unit with members cannot be deleted.
    org_unit = fields.ForeignKeyField("models.OrgUnit", related_name="members", null=True,
                                      on_delete=fields.RESTRICT)

    class Meta:
        table = "users"
        # users_created_id_idx (created_at DESC, id DESC) is created with SQL by the migration.
        indexes = (Index(fields=("org_unit_id",), name="users_org_unit_idx"),)
        constraints = (
            CheckConstraint(check=check_in("role", Role), name="users_role_check"),
            CheckConstraint(check="email = lower(email)", name="users_email_lower"),
        )

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


class Session(Model):
    """One login: the refresh-token family and what revokes it."""

    id = fields.UUIDField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="sessions", on_delete=fields.CASCADE)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=40, null=True)

    class Meta:
        table = "sessions"


class RefreshToken(Model):
    """Hash of one refresh token of a session; used tokens are kept to detect reuse."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    session = fields.ForeignKeyField("models.Session", related_name="tokens", on_delete=fields.CASCADE)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_tokens"
        indexes = (Index(fields=("session_id",), name="refresh_tokens_session_idx"),)
