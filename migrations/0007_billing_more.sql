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

-- Auto-refill: when the balance falls low, one off-session charge of the saved card buys the
-- chosen pack, at most `monthly_cap` credits a calendar month (UTC).
CREATE TABLE auto_refills (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    pack TEXT NOT NULL,
    monthly_cap INTEGER NOT NULL CHECK (monthly_cap > 0),
    updated_at INTEGER NOT NULL
) STRICT;

-- Each refill charge, keyed as its Idempotency-Key is: user, month and count. Pending until
-- Stripe says succeeded (then credited once, as grant 'refill:<payment intent>') or failed.
CREATE TABLE auto_refill_attempts (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    month TEXT NOT NULL,
    n INTEGER NOT NULL CHECK (n > 0),
    pack TEXT NOT NULL,
    credits INTEGER NOT NULL CHECK (credits > 0),
    payment_intent TEXT UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    error TEXT,
    created_at INTEGER NOT NULL,
    settled_at INTEGER,
    UNIQUE (user_id, month, n)
) STRICT;
