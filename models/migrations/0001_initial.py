"""Initial schema. Written as SQL so that constraints the ORM cannot express
(generated columns, functional indexes, the append-only trigger) live in one place."""

from tortoise.migrations.migration import Migration as BaseMigration
from tortoise.migrations.operations import RunSQL

SCHEMA = r"""
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email varchar(254) NOT NULL,
    password_hash varchar(100) NOT NULL,
    full_name varchar(200) NOT NULL,
    role varchar(16) NOT NULL DEFAULT 'student' CHECK (role IN ('student', 'curator', 'admin')),
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_lower CHECK (email = lower(email))
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_created_id_idx ON users (created_at DESC, id DESC);

CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason varchar(40)
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash varchar(64) PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE achievement_types (
    slug varchar(64) PRIMARY KEY,
    name varchar(200) NOT NULL,
    category varchar(16) NOT NULL
        CHECK (category IN ('educational', 'scientific', 'creative', 'social', 'sports')),
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE achievements (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title varchar(200) NOT NULL,
    title_key text GENERATED ALWAYS AS (lower(btrim(title))) STORED,
    type varchar(64) NOT NULL REFERENCES achievement_types (slug) ON DELETE RESTRICT,
    category varchar(16) NOT NULL,
    date date NOT NULL,
    proof_url varchar(2048),
    description text,
    status varchar(16) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected')),
    review_decision varchar(16),
    review_comment text,
    reviewer_id uuid,
    reviewed_at timestamptz,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The duplicate rule, enforced by the database so concurrent creates cannot both win.
CREATE UNIQUE INDEX achievements_dedup_key ON achievements (owner_id, type, date, title_key);
-- One index per sort order, owner first (a student's own list) and global (staff, owner=any).
CREATE INDEX achievements_owner_date_idx ON achievements (owner_id, date, id);
CREATE INDEX achievements_owner_title_idx ON achievements (owner_id, title_key, id);
CREATE INDEX achievements_owner_created_idx ON achievements (owner_id, created_at, id);
CREATE INDEX achievements_date_idx ON achievements (date, id);
CREATE INDEX achievements_title_idx ON achievements (title_key, id);
CREATE INDEX achievements_created_idx ON achievements (created_at, id);
CREATE INDEX achievements_status_date_idx ON achievements (status, date, id);

CREATE TABLE audit_events (
    id uuid PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    request_id varchar(128),
    actor_id uuid,
    ip varchar(64),
    action varchar(64) NOT NULL,
    target_type varchar(32),
    target_id varchar(128),
    outcome varchar(16) NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    details jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_time_idx ON audit_events (occurred_at DESC, id DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, occurred_at DESC);
CREATE INDEX audit_events_target_idx ON audit_events (target_id, occurred_at DESC);
CREATE INDEX audit_events_action_idx ON audit_events (action, occurred_at DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
"""

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

SEED = "INSERT INTO achievement_types (slug, name, category) VALUES " + ", ".join(
    f"('{slug}', '{name}', '{category}')" for slug, name, category in CATALOGUE
) + " ON CONFLICT (slug) DO NOTHING;"


class Migration(BaseMigration):
    initial = True
    operations = [RunSQL(SCHEMA), RunSQL(SEED)]
