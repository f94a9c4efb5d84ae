from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.enums import Category, Decision, Status, check_in


class AchievementType(Model):
    slug = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=200)
    category = fields.CharEnumField(Category, max_length=16, description=None)
    is_active = fields.BooleanField(default=True, db_default=SqlDefault("true"))
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))

    class Meta:
        table = "achievement_types"
        constraints = (CheckConstraint(check=check_in("category", Category), name="achievement_types_category_check"),)


class Achievement(Model):
    id = fields.UUIDField(primary_key=True)
    owner = fields.ForeignKeyField("models.User", related_name="achievements", on_delete=fields.CASCADE)
    title = fields.CharField(max_length=200)
    # lower(btrim(title)), maintained by the database (a generated column: see the migration)
    # for the duplicate rule and the title sort, so that both follow PostgreSQL's case rule.
    title_key = fields.TextField(null=True, generated=True)
    # The slug of an AchievementType; the foreign key (ON DELETE RESTRICT) is created by the
    # migration: a relation whose column is not "<name>_id" (here "type") would look changed
    # to Tortoise's autodetector on every run.
    type = fields.CharField(max_length=64)
    category = fields.CharEnumField(Category, max_length=16, description=None)
    # Slugs of a Level and a Result (optional); foreign keys created by the migration, as for type.
    level = fields.CharField(max_length=64, null=True)
    result = fields.CharField(max_length=64, null=True)
    date = fields.DateField()
    proof_url = fields.CharField(max_length=2048, null=True)
    description = fields.TextField(null=True)
    status = fields.CharEnumField(Status, max_length=16, default=Status.PENDING, db_default=SqlDefault("'pending'"),
                                  description=None)
    review_decision = fields.CharEnumField(Decision, max_length=16, null=True, description=None)
    review_comment = fields.TextField(null=True)
    reviewer_id = fields.UUIDField(null=True)
    reviewed_at = fields.DatetimeField(null=True)
    version = fields.IntField(default=1, db_default=SqlDefault("1"))
    created_at = fields.DatetimeField(auto_now_add=True, db_default=SqlDefault("now()"))
    updated_at = fields.DatetimeField(auto_now=True, db_default=SqlDefault("now()"))

    class Meta:
        table = "achievements"
        # One index per sort order, owner first (a student's own list) and global (staff).
        # The ones on title_key and the duplicate rule's unique index are created with SQL in
        # the migration (the ORM cannot declare them on a generated column).
        indexes = (
            Index(fields=("owner_id", "date", "id"), name="achievements_owner_date_idx"),
            Index(fields=("owner_id", "created_at", "id"), name="achievements_owner_created_idx"),
            Index(fields=("date", "id"), name="achievements_date_idx"),
            Index(fields=("created_at", "id"), name="achievements_created_idx"),
            Index(fields=("status", "date", "id"), name="achievements_status_date_idx"),
        )
        constraints = (CheckConstraint(check=check_in("status", Status), name="achievements_status_check"),)


class AchievementCount(Model):
    """How many achievements a user holds, for the quota: kept by triggers on achievements
    (see the migration), spread over a few slots per user so that concurrent creates of one
    user do not queue on a single counter row; the count is the sum of the slots."""

    id = fields.BigIntField(primary_key=True)
    owner_id = fields.UUIDField()
    slot = fields.SmallIntField()
    n = fields.IntField()

    class Meta:
        table = "achievement_counts"
        unique_together = (("owner_id", "slot"),)
