-- Stripe (research: stripe-billing §5.3): the customer bound to each user before Checkout, a
-- mirror of each subscription overwritten on every sync from the API, and the webhook inbox.

CREATE TABLE billing_customers (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    stripe_customer_id TEXT NOT NULL UNIQUE,
    livemode INTEGER NOT NULL CHECK (livemode IN (0, 1)),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE subscriptions (
    stripe_subscription_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    stripe_customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    -- The licensed item's price, and the plan it maps to in --plans ('unknown' when unmapped).
    price_id TEXT NOT NULL,
    plan TEXT NOT NULL,
    period_start INTEGER,
    period_end INTEGER,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    cancel_at INTEGER,
    ended_at INTEGER,
    -- When Roost first saw it past_due (the grace period runs from here); NULL otherwise.
    past_due_since INTEGER,
    -- A downgrade takes effect at the period's end: the price paid for until then.
    prior_price_id TEXT,
    prior_until INTEGER,
    synced_at INTEGER NOT NULL
) STRICT;
CREATE INDEX subscriptions_by_user ON subscriptions (user_id, status);

CREATE TABLE stripe_events (
    event_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    object_id TEXT,
    customer_id TEXT,
    livemode INTEGER NOT NULL CHECK (livemode IN (0, 1)),
    api_version TEXT,
    -- Informational only: never an ordering key.
    created INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    processed_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at INTEGER NOT NULL
) STRICT;
CREATE INDEX stripe_events_pending ON stripe_events (next_attempt_at) WHERE processed_at IS NULL;
