"""The university (API.md "O"): org units, membership, curator scopes and the review history,
generated from the models; SQL for the one-root index, the root itself and the backfill of the
reviews version 1 kept on the achievements. (Tortoise's CreateModel does not create the CHECK
constraints of its options: AddConstraint does.)"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import Decision, OrgUnitKind
from tortoise.fields.base import OnDelete
from tortoise.fields.db_defaults import SqlDefault
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

ONE_ROOT = """
CREATE UNIQUE INDEX org_units_one_root ON org_units ((true)) WHERE parent_id IS NULL;
INSERT INTO org_units (id, name, kind) VALUES (gen_random_uuid(), 'University', 'university');
"""

# Version 1's curators reviewed every student: they keep doing so (a scope on the university).
# Curators made from now on start without scopes and see no one until given some.
KEEP_CURATORS_REACH = """
INSERT INTO curator_scopes (user_id, org_unit_id)
SELECT u.id, o.id FROM users u, org_units o WHERE u.role = 'curator' AND o.parent_id IS NULL;
"""

BACKFILL_REVIEWS = """
INSERT INTO reviews (id, achievement_id, decision, comment, reviewer_id, reviewed_at, version)
SELECT gen_random_uuid(), id, review_decision, review_comment, reviewer_id, reviewed_at, version
FROM achievements WHERE review_decision IS NOT NULL AND reviewer_id IS NOT NULL AND reviewed_at IS NOT NULL;
"""


class Migration(migrations.Migration):
    dependencies = [('models', '0003_achievement_counts')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OrgUnit',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('kind', fields.CharEnumField(description='UNIVERSITY: university\nFACULTY: faculty\nGROUP: group', enum_type=OrgUnitKind, max_length=16)),
                ('parent', fields.ForeignKeyField('models.OrgUnit', source_field='parent_id', null=True, db_constraint=True, to_field='id', related_name='children', on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(db_default=SqlDefault('now()'), auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'org_units', 'app': 'models', 'indexes': [Index(fields=['parent_id'], name='org_units_parent_idx')], 'pk_attr': 'id', 'table_description': "The university's structure: one root (created by a migration) → faculties → groups."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CuratorScope',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='scopes', on_delete=OnDelete.CASCADE)),
                ('org_unit', fields.ForeignKeyField('models.OrgUnit', source_field='org_unit_id', db_constraint=True, to_field='id', related_name='curator_scopes', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'curator_scopes', 'app': 'models', 'unique_together': (('user_id', 'org_unit_id'),), 'pk_attr': 'id', 'table_description': "A unit a curator is responsible for; it covers the unit's whole subtree."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Review',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('achievement', fields.ForeignKeyField('models.Achievement', source_field='achievement_id', db_constraint=True, to_field='id', related_name='reviews', on_delete=OnDelete.CASCADE)),
                ('decision', fields.CharEnumField(description='APPROVED: approved\nREJECTED: rejected', enum_type=Decision, max_length=16)),
                ('comment', fields.TextField(null=True, unique=False)),
                ('reviewer_id', fields.UUIDField()),
                ('reviewed_at', fields.DatetimeField(db_default=SqlDefault('now()'), auto_now=False, auto_now_add=False)),
                ('version', fields.IntField()),
            ],
            options={'table': 'reviews', 'app': 'models', 'indexes': [Index(fields=['achievement_id', 'reviewed_at'], name='reviews_achievement_idx')], 'pk_attr': 'id', 'table_description': 'Every decision on an achievement, kept when the achievement is edited back to pending.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='User',
            name='org_unit',
            field=fields.ForeignKeyField('models.OrgUnit', source_field='org_unit_id', null=True, db_constraint=True, to_field='id', related_name='members', on_delete=OnDelete.RESTRICT),
        ),
        ops.AddIndex(
            model_name='User',
            index=Index(fields=['org_unit_id'], name='users_org_unit_idx'),
        ),
        ops.AddConstraint(model_name='OrgUnit', constraint=CheckConstraint(check="kind IN ('university', 'faculty', 'group')", name='org_units_kind_check')),
        ops.AddConstraint(model_name='OrgUnit', constraint=CheckConstraint(check="(kind = 'university') = (parent_id IS NULL)", name='org_units_root_check')),
        ops.AddConstraint(model_name='Review', constraint=CheckConstraint(check="decision IN ('approved', 'rejected')", name='reviews_decision_check')),
        # One university: the root is the only unit without a parent (a partial unique index,
        # which the ORM cannot declare), created here; renamable by admins.
        ops.RunSQL(ONE_ROOT, reverse_sql="DROP INDEX org_units_one_root; DELETE FROM org_units;"),
        # The reviews version 1 kept on the achievements themselves become the first history.
        ops.RunSQL(BACKFILL_REVIEWS, reverse_sql="DELETE FROM reviews;"),
        ops.RunSQL(KEEP_CURATORS_REACH, reverse_sql="DELETE FROM curator_scopes;"),
    ]
