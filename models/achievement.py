from tortoise import fields
from tortoise.models import Model


class AchievementType(Model):
    slug = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=200)
    category = fields.CharField(max_length=16)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "achievement_types"


class Achievement(Model):
    id = fields.UUIDField(primary_key=True)
    owner = fields.ForeignKeyField("models.User", related_name="achievements", on_delete=fields.CASCADE)
    title = fields.CharField(max_length=200)
    # ``title_key`` (lower(btrim(title))) is a generated column the database maintains
    # for the duplicate rule; it is never written from Python.
    type = fields.ForeignKeyField(
        "models.AchievementType", related_name="achievements", to_field="slug",
        source_field="type", on_delete=fields.RESTRICT,
    )
    category = fields.CharField(max_length=16)
    date = fields.DateField()
    proof_url = fields.CharField(max_length=2048, null=True)
    description = fields.TextField(null=True)
    status = fields.CharField(max_length=16, default="pending")
    review_decision = fields.CharField(max_length=16, null=True)
    review_comment = fields.TextField(null=True)
    reviewer_id = fields.UUIDField(null=True)
    reviewed_at = fields.DatetimeField(null=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "achievements"
