-- The `fly` provider's record of each user's Fly resources (research §6 item 1): written before
-- the first Fly call and after every id Fly returns, so a provision cut short by a crash resumes
-- with the same provision id, app, volume and machine instead of making them twice. Cleared once
-- the user's app is deleted.
CREATE TABLE fly_machines (
    user_id TEXT PRIMARY KEY,
    -- The idempotency tag in the machine's metadata.
    provision_id TEXT NOT NULL,
    app_name TEXT,
    volume_id TEXT,
    machine_id TEXT,
    region TEXT,
    secrets_version INTEGER,
    updated_at INTEGER NOT NULL
);
