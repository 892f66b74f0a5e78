-- How a chat's recent runs ended when they did not finish (stopped, or failed), so a reloaded
-- page marks the cut-off reply after a restart of Roost too: the agent's history keeps the
-- reply's text but not that it was cut off. The newest 32 per chat are kept.
CREATE TABLE chat_run_ends (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    session_key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('aborted', 'error')),
    message TEXT,
    ts INTEGER NOT NULL
) STRICT;
CREATE INDEX chat_run_ends_by_chat ON chat_run_ends (user_id, session_key, id);
