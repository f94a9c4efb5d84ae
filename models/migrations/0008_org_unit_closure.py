"""The org tree's closure (models.OrgUnitLink), generated from the model; SQL for the trigger
that keeps it (the ORM declares no triggers) and its backfill from the existing tree. A scope
check becomes an indexed join instead of a recursive walk in every statement."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

# A new unit is linked to itself and to each ancestor of its parent. Units never move: a
# changed parent is refused (the API has no move; the closure would be wrong after one).
KEEP_CLOSURE = """
CREATE FUNCTION org_unit_closure_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO org_unit_closure (ancestor_id, descendant_id, depth) VALUES (NEW.id, NEW.id, 0);
    INSERT INTO org_unit_closure (ancestor_id, descendant_id, depth)
    SELECT ancestor_id, NEW.id, depth + 1 FROM org_unit_closure WHERE descendant_id = NEW.parent_id;
    RETURN NULL;
END $$;
CREATE TRIGGER org_units_closure AFTER INSERT ON org_units FOR EACH ROW EXECUTE FUNCTION org_unit_closure_insert();
CREATE FUNCTION org_unit_no_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'org units cannot be moved' USING ERRCODE = 'check_violation',
        CONSTRAINT = 'org_units_no_move';
END $$;
CREATE TRIGGER org_units_no_move BEFORE UPDATE OF parent_id ON org_units FOR EACH ROW
    WHEN (OLD.parent_id IS DISTINCT FROM NEW.parent_id) EXECUTE FUNCTION org_unit_no_move();
"""
# The closure of the tree as it stands (a database upgraded from an earlier version).
BACKFILL = """
WITH RECURSIVE links(ancestor_id, descendant_id, depth) AS (
    SELECT id, id, 0 FROM org_units
    UNION ALL SELECT l.ancestor_id, o.id, l.depth + 1 FROM links l JOIN org_units o ON o.parent_id = l.descendant_id
)
INSERT INTO org_unit_closure (ancestor_id, descendant_id, depth) SELECT ancestor_id, descendant_id, depth FROM links;
"""
DROP_CLOSURE = """
DROP TRIGGER org_units_no_move ON org_units; DROP FUNCTION org_unit_no_move();
DROP TRIGGER org_units_closure ON org_units; DROP FUNCTION org_unit_closure_insert();
DELETE FROM org_unit_closure;
"""


class Migration(migrations.Migration):
    dependencies = [('models', '0007_scoring')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OrgUnitLink',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('ancestor', fields.ForeignKeyField('models.OrgUnit', source_field='ancestor_id', db_constraint=True, to_field='id', related_name='descendant_links', on_delete=OnDelete.CASCADE)),
                ('descendant', fields.ForeignKeyField('models.OrgUnit', source_field='descendant_id', db_constraint=True, to_field='id', related_name='ancestor_links', on_delete=OnDelete.CASCADE)),
                ('depth', fields.SmallIntField()),
            ],
            options={'table': 'org_unit_closure', 'app': 'models', 'unique_together': (('ancestor_id', 'descendant_id'),), 'indexes': [Index(fields=['descendant_id', 'ancestor_id'], name='org_unit_closure_descendant_idx')], 'pk_attr': 'id', 'table_description': "The tree's closure: a row for every unit and each of its ancestors, itself included"},
            bases=['Model'],
        ),
        ops.AddConstraint(model_name='OrgUnitLink', constraint=CheckConstraint(check='depth >= 0', name='org_unit_closure_depth_check')),
        ops.RunSQL(KEEP_CLOSURE + BACKFILL, reverse_sql=DROP_CLOSURE),
    ]
