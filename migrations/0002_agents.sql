-- Each user's agent machine, the chat cache that makes history instant, and metered LLM calls.

CREATE TABLE machines (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    external_id TEXT,
    address TEXT,
    state TEXT NOT NULL,
    stage TEXT,
    detail TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE chat_sessions (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- The recent messages of each session, as last read from the agent.
CREATE TABLE chat_messages (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_key TEXT NOT NULL,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, session_key, position)
);

-- One row per model call through the LLM proxy; `idempotency_key` makes recording exactly-once.
CREATE TABLE usage_events (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL UNIQUE,
    api TEXT NOT NULL CHECK (api IN ('openai', 'anthropic')),
    model TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    upstream_status INTEGER NOT NULL,
    complete INTEGER NOT NULL CHECK (complete IN (0, 1)),
    created_at INTEGER NOT NULL
);
CREATE INDEX usage_events_by_user ON usage_events(user_id, created_at);
