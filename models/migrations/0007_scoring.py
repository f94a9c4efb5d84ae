"""Levels, results and scoring rule sets (API.md "S"), generated from the models; SQL for the
foreign keys of achievements.level/result and the seed of the two catalogues."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import RuleSetStatus
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise.fields.db_defaults import SqlDefault
from uuid import uuid4
from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint

LEVELS = [("faculty", "Faculty", 1), ("university", "University", 2), ("city", "City", 3),
          ("regional", "Regional", 4), ("national", "National", 5), ("international", "International", 6)]
RESULTS = [("winner", "Winner"), ("prize", "Prize-winner"), ("participant", "Participant")]

LEVEL_RESULT_SQL = (
    "ALTER TABLE achievements ADD CONSTRAINT achievements_level_fkey FOREIGN KEY (level) "
    "REFERENCES levels (slug) ON DELETE RESTRICT; "
    "ALTER TABLE achievements ADD CONSTRAINT achievements_result_fkey FOREIGN KEY (result) "
    "REFERENCES results (slug) ON DELETE RESTRICT; "
    "INSERT INTO levels (slug, name, rank) VALUES "
    + ", ".join(f"('{slug}', '{name}', {rank})" for slug, name, rank in LEVELS) + " ON CONFLICT DO NOTHING; "
    "INSERT INTO results (slug, name) VALUES "
    + ", ".join(f"('{slug}', '{name}')" for slug, name in RESULTS) + " ON CONFLICT DO NOTHING;"
)


class Migration(migrations.Migration):
    dependencies = [('models', '0006_credentials')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Level',
            fields=[
                ('slug', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('rank', fields.IntField()),
                ('is_active', fields.BooleanField(default=True, db_default=SqlDefault('true'))),
                ('created_at', fields.DatetimeField(db_default=SqlDefault('now()'), auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'levels', 'app': 'models', 'pk_attr': 'slug', 'table_description': 'How wide an event was (faculty … international); a higher rank is wider.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Result',
            fields=[
                ('slug', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('is_active', fields.BooleanField(default=True, db_default=SqlDefault('true'))),
                ('created_at', fields.DatetimeField(db_default=SqlDefault('now()'), auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'results', 'app': 'models', 'pk_attr': 'slug', 'table_description': 'What the student achieved at the event (winner, prize, participant).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RuleSet',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('period_from', fields.DateField()),
                ('period_to', fields.DateField()),
                ('rules', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('status', fields.CharEnumField(default=RuleSetStatus.DRAFT, description='DRAFT: draft\nPUBLISHED: published', db_default=SqlDefault("'draft'"), enum_type=RuleSetStatus, max_length=16)),
                ('published_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(db_default=SqlDefault('now()'), auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'rule_sets', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Scoring rules for a period (a scholarship round). Immutable once published: a change is'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Achievement',
            name='level',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Achievement',
            name='result',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(model_name='RuleSet', constraint=CheckConstraint(check="status IN ('draft', 'published')", name='rule_sets_status_check')),
        ops.AddConstraint(model_name='RuleSet', constraint=CheckConstraint(check='period_from <= period_to', name='rule_sets_period_check')),
        # Foreign keys of achievements.level/result (plain columns in the model, as type) and the
        # seeded catalogues.
        ops.RunSQL(LEVEL_RESULT_SQL, reverse_sql="ALTER TABLE achievements DROP CONSTRAINT achievements_level_fkey, "
                                                 "DROP CONSTRAINT achievements_result_fkey;"),
    ]
