-- Chat titles and archiving. `titled` is 1 once a chat has a real title (the user's, or one from
-- its first message), so a first message never overwrites a rename. `archived_at` hides a chat
-- from the list without deleting it.
ALTER TABLE chat_sessions ADD COLUMN titled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_sessions ADD COLUMN archived_at INTEGER;
