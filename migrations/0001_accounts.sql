-- Accounts, sessions, API tokens and received webhook ids. Times are Unix seconds.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT UNIQUE,
    password_hash TEXT,
    clerk_user_id TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);

-- Only the SHA-256 of the session secret is stored.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    user_agent TEXT,
    ip TEXT
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    prefix TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens(user_id);

-- Webhook deliveries already handled, keyed by the sender's message id (Svix `svix-id`).
CREATE TABLE webhook_events (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
);

-- Clerk sessions ended by webhook; their tokens are refused until they expire.
CREATE TABLE clerk_revoked_sessions (
    sid TEXT PRIMARY KEY,
    revoked_at INTEGER NOT NULL
);
