-- Sign-up policy, operator admin and account recovery (issue 15 items 6-7, issue 13 item 11).

-- The admin role, and a suspension that blocks sign-in, tokens and the relay.
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1));
ALTER TABLE users ADD COLUMN suspended_at INTEGER;
-- On a server that had accounts before this migration, the first of them is the admin.
UPDATE users SET is_admin = 1
 WHERE id = (SELECT id FROM users WHERE deleted_at IS NULL ORDER BY created_at, rowid LIMIT 1);

-- Invite codes: only the SHA-256 of the code is kept; `id` (its first characters) names it.
CREATE TABLE invite_codes (
    id TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    uses INTEGER NOT NULL CHECK (uses >= 1),
    uses_left INTEGER NOT NULL CHECK (uses_left >= 0 AND uses_left <= uses),
    expires_at INTEGER,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

-- Every admin action, and every refused attempt at one. Appended to only.
CREATE TABLE admin_audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    -- A user id, or 'cli' for `roost admin` on the server.
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_user_id TEXT,
    detail TEXT NOT NULL DEFAULT '',
    allowed INTEGER NOT NULL CHECK (allowed IN (0, 1))
) STRICT;
CREATE INDEX admin_audit_by_target ON admin_audit (target_user_id, id);

-- One-time password reset links; only the SHA-256 of the token is kept.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) STRICT;
CREATE INDEX password_resets_by_user ON password_resets (user_id);
