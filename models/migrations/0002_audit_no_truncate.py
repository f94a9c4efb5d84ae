"""The audit log refuses TRUNCATE as well as UPDATE and DELETE (a row trigger never sees a
TRUNCATE; a statement trigger does)."""

from tortoise.migrations.migration import Migration as BaseMigration
from tortoise.migrations.operations import RunSQL

NO_TRUNCATE = """
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
"""


class Migration(BaseMigration):
    dependencies = [("models", "0001_initial")]
    operations = [RunSQL(NO_TRUNCATE, reverse_sql="DROP TRIGGER audit_events_no_truncate ON audit_events;")]
