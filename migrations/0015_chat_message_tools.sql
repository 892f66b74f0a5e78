-- A cached reply's tool calls (JSON: [{id, name, args, result, status}]), so a reloaded chat
-- shows its tool cards while the agent is asleep too. NULL for a message without any.
ALTER TABLE chat_messages ADD COLUMN tools TEXT;
