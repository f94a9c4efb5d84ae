"""The audit log refuses TRUNCATE as well as UPDATE and DELETE (a row trigger never sees a
TRUNCATE; a statement trigger does).

Also brings a version-1 database in line with the generated schema: its unique index on
users.email becomes the unique constraint the model declares (no rebuild: the index is reused)."""

from tortoise.migrations.migration import Migration as BaseMigration
from tortoise.migrations.operations import RunSQL

NO_TRUNCATE = """
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
"""


EMAIL_CONSTRAINT = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'users_email_key') THEN
        ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;
    END IF;
END;
$$;
"""


class Migration(BaseMigration):
    dependencies = [("models", "0001_initial")]
    operations = [
        RunSQL(NO_TRUNCATE, reverse_sql="DROP TRIGGER audit_events_no_truncate ON audit_events;"),
        RunSQL(EMAIL_CONSTRAINT),
    ]
