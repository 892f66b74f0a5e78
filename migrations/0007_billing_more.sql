-- Access follows the subscription (research: stripe-billing §6.4): the agent of a user whose paid
-- access ended is stopped and may not start; its data is kept until `destroy_after`, then the
-- lifecycle destroys it. A resubscription removes the hold.
CREATE TABLE agent_holds (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    since INTEGER NOT NULL,
    destroy_after INTEGER NOT NULL,
    destroyed_at INTEGER
) STRICT;
CREATE INDEX agent_holds_due ON agent_holds (destroy_after) WHERE destroyed_at IS NULL;

-- The payment behind a pack, so a refund or dispute of its charge finds the credits it bought.
CREATE TABLE grant_payments (
    payment_intent TEXT PRIMARY KEY,
    grant_source_ref TEXT NOT NULL UNIQUE
) STRICT;

-- An account whose paid credits were refunded or disputed after some were spent.
ALTER TABLE credit_accounts ADD COLUMN review_reason TEXT;

-- A deleted account's live subscription is cancelled with Stripe by the worker, retried with
-- backoff while Stripe is down; the mirror row is the queue (it stays live until Stripe says so).
ALTER TABLE subscriptions ADD COLUMN cancel_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN cancel_next_at INTEGER NOT NULL DEFAULT 0;
