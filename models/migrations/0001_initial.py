"""The initial schema, generated from the models by ``python -m service makemigrations``,
plus what the ORM cannot declare (RunSQL below): the generated ``title_key`` column with
the indexes on it, a partial index, the append-only trigger of the audit log, and the seed
of the type catalogue.

A database created by version 1 (whose 0001 was hand-written SQL) has exactly this schema;
``tests/test_migrations.py`` proves it."""

from uuid import uuid4

from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise.fields.db_defaults import SqlDefault
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import CheckConstraint

from models.enums import Category, Decision, Outcome, Role, Status

APPEND_ONLY = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
"""

# The type catalogue a fresh database starts with (admins extend it over the API).
CATALOGUE = [
    ("olympiad", "Olympiad", "educational"),
    ("competition", "Academic competition", "educational"),
    ("certificate", "Certificate or course", "educational"),
    ("scholarship", "Scholarship", "educational"),
    ("conference", "Conference talk", "scientific"),
    ("publication", "Publication", "scientific"),
    ("grant", "Research grant", "scientific"),
    ("patent", "Patent", "scientific"),
    ("exhibition", "Exhibition", "creative"),
    ("festival", "Creative festival or contest", "creative"),
    ("performance", "Performance", "creative"),
    ("volunteering", "Volunteering", "social"),
    ("community-project", "Community project", "social"),
    ("student-government", "Student government", "social"),
    ("sports-competition", "Sports competition", "sports"),
    ("sports-record", "Sports record or ranking", "sports"),
]


async def seed_catalogue(apps, schema_editor) -> None:
    achievement_type = apps.get_model("models.AchievementType")
    existing = set(await achievement_type.all().values_list("slug", flat=True))
    await achievement_type.bulk_create([
        achievement_type(slug=slug, name=name, category=category)
        for slug, name, category in CATALOGUE if slug not in existing
    ])


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AchievementType',
            fields=[
                ('slug', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('category', fields.CharEnumField(description='EDUCATIONAL: educational\nSCIENTIFIC: scientific\nCREATIVE: creative\nSOCIAL: social\nSPORTS: sports', enum_type=Category, max_length=16)),
                ('is_active', fields.BooleanField(default=True, db_default=SqlDefault('true'))),
                ('created_at', fields.DatetimeField(db_default=SqlDefault("now()"), auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'achievement_types', 'app': 'models', 'pk_attr': 'slug'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('occurred_at', fields.DatetimeField(db_default=SqlDefault('clock_timestamp()'), auto_now=False, auto_now_add=False)),
                ('request_id', fields.CharField(null=True, max_length=128)),
                ('actor_id', fields.UUIDField(null=True)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('action', fields.CharField(max_length=64)),
                ('target_type', fields.CharField(null=True, max_length=32)),
                ('target_id', fields.CharField(null=True, max_length=128)),
                ('outcome', fields.CharEnumField(description='SUCCESS: success\nFAILURE: failure\nDENIED: denied', enum_type=Outcome, max_length=16)),
                ('details', fields.JSONField(default=dict, db_default=SqlDefault("'{}'::jsonb"), encoder=JSON_DUMPS, decoder=loads)),
            ],
            options={'table': 'audit_events', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Append-only: triggers created by the migrations refuse UPDATE, DELETE and TRUNCATE.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=100)),
                ('full_name', fields.CharField(max_length=200)),
                ('role', fields.CharEnumField(default=Role.STUDENT, description='STUDENT: student\nCURATOR: curator\nADMIN: admin', db_default=SqlDefault("'student'"), enum_type=Role, max_length=16)),
                ('is_active', fields.BooleanField(default=True, db_default=SqlDefault('true'))),
                ('created_at', fields.DatetimeField(db_default=SqlDefault("now()"), auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(db_default=SqlDefault("now()"), auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'users', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Achievement',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='achievements', on_delete=OnDelete.CASCADE)),
                ('title', fields.CharField(max_length=200)),
                ('title_key', fields.TextField(generated=True, null=True, unique=False)),
                ('type', fields.CharField(max_length=64)),
                ('category', fields.CharEnumField(description='EDUCATIONAL: educational\nSCIENTIFIC: scientific\nCREATIVE: creative\nSOCIAL: social\nSPORTS: sports', enum_type=Category, max_length=16)),
                ('date', fields.DateField()),
                ('proof_url', fields.CharField(null=True, max_length=2048)),
                ('description', fields.TextField(null=True, unique=False)),
                ('status', fields.CharEnumField(default=Status.PENDING, description='PENDING: pending\nAPPROVED: approved\nREJECTED: rejected', db_default=SqlDefault("'pending'"), enum_type=Status, max_length=16)),
                ('review_decision', fields.CharEnumField(null=True, description='APPROVED: approved\nREJECTED: rejected', enum_type=Decision, max_length=16)),
                ('review_comment', fields.TextField(null=True, unique=False)),
                ('reviewer_id', fields.UUIDField(null=True)),
                ('reviewed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('version', fields.IntField(default=1, db_default=SqlDefault('1'))),
                ('created_at', fields.DatetimeField(db_default=SqlDefault("now()"), auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(db_default=SqlDefault("now()"), auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'achievements', 'app': 'models', 'indexes': [Index(fields=['owner_id', 'date', 'id'], name='achievements_owner_date_idx'), Index(fields=['owner_id', 'created_at', 'id'], name='achievements_owner_created_idx'), Index(fields=['date', 'id'], name='achievements_date_idx'), Index(fields=['created_at', 'id'], name='achievements_created_idx'), Index(fields=['status', 'date', 'id'], name='achievements_status_date_idx')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Session',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(db_default=SqlDefault("now()"), auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_reason', fields.CharField(null=True, max_length=40)),
            ],
            options={'table': 'sessions', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One login: the refresh-token family and what revokes it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RefreshToken',
            fields=[
                ('token_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('session', fields.ForeignKeyField('models.Session', source_field='session_id', db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(db_default=SqlDefault("now()"), auto_now=False, auto_now_add=True)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'refresh_tokens', 'app': 'models', 'indexes': [Index(fields=['session_id'], name='refresh_tokens_session_idx')], 'pk_attr': 'token_hash', 'table_description': 'Hash of one refresh token of a session; used tokens are kept to detect reuse.'},
            bases=['Model'],
        ),
        # CHECK constraints (Tortoise's CreateModel does not emit those of its options).
        ops.AddConstraint(model_name='AchievementType', constraint=CheckConstraint(check="category IN ('educational', 'scientific', 'creative', 'social', 'sports')", name='achievement_types_category_check')),
        ops.AddConstraint(model_name='AuditEvent', constraint=CheckConstraint(check="outcome IN ('success', 'failure', 'denied')", name='audit_events_outcome_check')),
        ops.AddConstraint(model_name='User', constraint=CheckConstraint(check="role IN ('student', 'curator', 'admin')", name='users_role_check')),
        ops.AddConstraint(model_name='User', constraint=CheckConstraint(check='email = lower(email)', name='users_email_lower')),
        ops.AddConstraint(model_name='Achievement', constraint=CheckConstraint(check="status IN ('pending', 'approved', 'rejected')", name='achievements_status_check')),
        # title_key = lower(btrim(title)), kept by the database so the duplicate rule and the
        # title sort follow PostgreSQL's case rule (the model declares it as a generated field).
        ops.RunSQL(
            "ALTER TABLE achievements DROP COLUMN title_key; "
            "ALTER TABLE achievements ADD COLUMN title_key text GENERATED ALWAYS AS (lower(btrim(title))) STORED;",
            reverse_sql="ALTER TABLE achievements DROP COLUMN title_key; ALTER TABLE achievements ADD COLUMN title_key text;",
        ),
        # Indexes on the generated column (the ORM cannot declare them), a partial index, and the
        # foreign key of achievements.type (see the model).
        ops.RunSQL(
            "CREATE UNIQUE INDEX achievements_dedup_key ON achievements (owner_id, type, date, title_key); "
            "CREATE INDEX achievements_owner_title_idx ON achievements (owner_id, title_key, id); "
            "CREATE INDEX achievements_title_idx ON achievements (title_key, id); "
            "CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL; "
            "ALTER TABLE achievements ADD CONSTRAINT achievements_type_fkey FOREIGN KEY (type) "
            "REFERENCES achievement_types (slug) ON DELETE RESTRICT;",
            reverse_sql="ALTER TABLE achievements DROP CONSTRAINT achievements_type_fkey; DROP INDEX "
                        "achievements_dedup_key, achievements_owner_title_idx, achievements_title_idx, sessions_user_idx;",
        ),
        # Users and the audit log are listed newest first: descending indexes, which the ORM
        # cannot declare.
        ops.RunSQL(
            "CREATE INDEX users_created_id_idx ON users (created_at DESC, id DESC); "
            "CREATE INDEX audit_events_time_idx ON audit_events (occurred_at DESC, id DESC); "
            "CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, occurred_at DESC); "
            "CREATE INDEX audit_events_target_idx ON audit_events (target_id, occurred_at DESC); "
            "CREATE INDEX audit_events_action_idx ON audit_events (action, occurred_at DESC);",
            reverse_sql="DROP INDEX users_created_id_idx, audit_events_time_idx, audit_events_actor_idx, audit_events_target_idx, "
                        "audit_events_action_idx;",
        ),
        # The audit log is append-only at the database level (a trigger: no ORM equivalent).
        ops.RunSQL(APPEND_ONLY, reverse_sql="DROP TRIGGER audit_events_no_update_delete ON audit_events; "
                                            "DROP FUNCTION audit_events_append_only();"),
        ops.RunPython(seed_catalogue, reverse_code=None),
    ]
