"""The revocation status list behind verifiable credentials (API.md "B"), generated from the models."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.db_defaults import SqlDefault
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_portfolio')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CredentialStatus',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('achievement_id', fields.UUIDField()),
                ('version', fields.IntField()),
                ('issued_at', fields.DatetimeField(db_default=SqlDefault('now()'), auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'credential_statuses', 'app': 'models', 'unique_together': (('achievement_id', 'version'),), 'pk_attr': 'id', 'table_description': "A credential's place in the revocation status list (its id is the bit's index), per"},
            bases=['Model'],
        ),
    ]
