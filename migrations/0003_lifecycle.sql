-- Each machine's lifecycle history, and the per-user lease that keeps one writer per user
-- across Roost instances.

-- Every state change, with when and why, as the user's lifecycle panel and admins show it.
-- Trimmed to the most recent entries per user on insert; deleted with the account.
CREATE TABLE machine_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    state TEXT NOT NULL,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX machine_events_by_user ON machine_events (user_id, id);

-- Which instance may start, stop and supervise a user's agent. Held for as long as that
-- instance's agent is up (renewed every few seconds), taken over once it lapses. `version` grows
-- on every take, so a holder that lost its lease cannot renew it back.
CREATE TABLE machine_leases (
    user_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    -- When another instance last saw the user active (a chat socket there, a run, a model call).
    active_at_ms INTEGER,
    -- A stop or restart asked for by another instance, carried out by the holder.
    request TEXT,
    request_reason TEXT
);
