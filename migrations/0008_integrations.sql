-- Chat bots (Telegram, Discord) connected to a user's agent. The token is sealed with AES-256-GCM
-- under a key derived from the server secret (`key_version` names which); the rest is in the
-- clear for the integrations page. One bot belongs to one Roost user.
CREATE TABLE integrations (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel TEXT NOT NULL CHECK (channel IN ('telegram', 'discord')),
    token_sealed BLOB NOT NULL,
    key_version INTEGER NOT NULL,
    bot_id TEXT NOT NULL,
    bot_name TEXT NOT NULL,
    bot_username TEXT NOT NULL,
    -- Discord's application id (its invite link); NULL for Telegram.
    application_id TEXT,
    -- Discord: whether the Message Content intent is on; NULL for Telegram.
    message_content INTEGER,
    dm_policy TEXT NOT NULL DEFAULT 'pairing',
    -- Where the agent reads the token from (the file's name, not its contents).
    token_file TEXT NOT NULL,
    -- The user's own chat with the bot (the first sender they approved): where test messages go.
    owner_chat_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, channel)
);
CREATE UNIQUE INDEX integrations_bot ON integrations (channel, bot_id);
