"""Portfolio share links (API.md "P"), generated from the models."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise.fields.db_defaults import SqlDefault
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_university')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ShareLink',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='share_links', on_delete=OnDelete.CASCADE)),
                ('label', fields.CharField(max_length=200)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(db_default=SqlDefault('now()'), auto_now=False, auto_now_add=True)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'share_links', 'app': 'models', 'indexes': [Index(fields=['owner_id', 'created_at'], name='share_links_owner_idx')], 'pk_attr': 'id', 'table_description': "A capability URL to a student's verified achievements. The token is shown once and"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ShareLinkAccess',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('link', fields.ForeignKeyField('models.ShareLink', source_field='link_id', db_constraint=True, to_field='id', related_name='accesses', on_delete=OnDelete.CASCADE)),
                ('at', fields.DatetimeField(db_default=SqlDefault('now()'), auto_now=False, auto_now_add=False)),
                ('ip_hash', fields.CharField(max_length=64)),
            ],
            options={'table': 'share_link_accesses', 'app': 'models', 'indexes': [Index(fields=['link_id', 'at'], name='share_link_accesses_link_idx')], 'pk_attr': 'id', 'table_description': "One view of a shared portfolio: when, and a keyed hash of the viewer's IP (never the IP)."},
            bases=['Model'],
        ),
    ]
