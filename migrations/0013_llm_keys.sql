-- A user's own model provider key ("bring your own key"). The key is sealed with AES-256-GCM
-- under a key derived from the server secret (`key_version` names which); only its last four
-- characters are kept in the clear, to show it again. One key per user.
CREATE TABLE user_llm_keys (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL CHECK (provider IN ('openai', 'anthropic')),
    key_sealed BLOB NOT NULL,
    key_version INTEGER NOT NULL,
    last4 TEXT NOT NULL,
    -- The model the user's calls go to, from the provider's model list when the key was saved.
    model TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- When the provider last refused the key (401/403) on a model call; NULL while it works.
    failing_since INTEGER
);
