-- Tasks submitted through the task API (`POST /api/v1/tasks`) with an API token: one agent run
-- each. `runner` is the Roost process (a random id per start) that runs it and `heartbeat_at`
-- when it last said so, so a task whose runner died is found and closed.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    prompt TEXT NOT NULL,
    session_key TEXT NOT NULL,
    webhook_url TEXT,
    result_text TEXT,
    tool_calls TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    runner TEXT,
    heartbeat_at INTEGER,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
) STRICT;
CREATE INDEX tasks_by_user ON tasks (user_id, created_at DESC, id DESC);
CREATE INDEX tasks_by_token_open ON tasks (token_id) WHERE status IN ('queued', 'running');
CREATE INDEX tasks_open ON tasks (status) WHERE status IN ('queued', 'running');

-- Completion webhooks still to deliver (deleted once delivered or given up).
CREATE TABLE task_webhooks (
    task_id TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status INTEGER,
    delivered_at INTEGER,
    gave_up_at INTEGER
) STRICT;
CREATE INDEX task_webhooks_due ON task_webhooks (next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- Each API token's webhook signing secret, sealed with AES-256-GCM under a key derived from the
-- server secret (`webhook_key_version` names which): Roost must read it back to sign.
ALTER TABLE api_tokens ADD COLUMN webhook_secret_sealed BLOB;
ALTER TABLE api_tokens ADD COLUMN webhook_key_version INTEGER;
