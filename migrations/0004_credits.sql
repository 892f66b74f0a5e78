-- The credits ledger (research: stripe-billing §5): grants are buckets with priority and
-- expiry, the ledger is append-only, and every model call is debited once, in the same
-- transaction that records it. CHECK constraints are the last line of defence.

CREATE TABLE credit_accounts (
    user_id TEXT PRIMARY KEY,
    -- The sum of the remaining credits of the user's grants that are not voided.
    balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    -- The user's own cap on credits spent per calendar month (UTC); NULL: none.
    monthly_budget INTEGER CHECK (monthly_budget IS NULL OR monthly_budget >= 0),
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE credit_grants (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES credit_accounts(user_id),
    source TEXT NOT NULL CHECK (source IN ('free_allowance', 'plan_allowance', 'addon_pack', 'promo', 'adjustment')),
    -- One grant per reason: 'free:<user>:<yyyy-mm>', 'allowance:in_…', 'pack:cs_…'.
    source_ref TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL CHECK (amount > 0),
    remaining INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    -- Lower is spent first.
    priority INTEGER NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
    effective_at INTEGER NOT NULL,
    expires_at INTEGER,
    voided_at INTEGER,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX credit_grants_live ON credit_grants (user_id, priority, expires_at, id)
    WHERE remaining > 0 AND voided_at IS NULL;
CREATE INDEX credit_grants_expiring ON credit_grants (expires_at)
    WHERE remaining > 0 AND voided_at IS NULL AND expires_at IS NOT NULL;

-- Never updated or deleted. A debit writes one row per grant it draws on.
CREATE TABLE credit_ledger (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES credit_accounts(user_id),
    entry_type TEXT NOT NULL CHECK (entry_type IN ('grant', 'debit', 'expire', 'void', 'adjust')),
    delta INTEGER NOT NULL CHECK (delta <> 0),
    grant_id INTEGER NOT NULL REFERENCES credit_grants(id),
    usage_event_id INTEGER REFERENCES usage_events(id),
    ref TEXT,
    created_at INTEGER NOT NULL,
    CHECK ((entry_type = 'grant') = (delta > 0) OR entry_type = 'adjust')
) STRICT;
CREATE INDEX credit_ledger_by_user ON credit_ledger (user_id, id);
CREATE INDEX credit_ledger_by_usage ON credit_ledger (usage_event_id) WHERE usage_event_id IS NOT NULL;
CREATE UNIQUE INDEX credit_ledger_one_close_per_grant ON credit_ledger (grant_id) WHERE entry_type IN ('expire', 'void');

-- What each model call cost: `from_grants` was debited; `shortfall` is what the balance could
-- not cover (a call that began with credits left and cost more than them).
ALTER TABLE usage_events ADD COLUMN credits INTEGER NOT NULL DEFAULT 0 CHECK (credits >= 0);
ALTER TABLE usage_events ADD COLUMN from_grants INTEGER NOT NULL DEFAULT 0 CHECK (from_grants >= 0);
ALTER TABLE usage_events ADD COLUMN shortfall INTEGER NOT NULL DEFAULT 0 CHECK (shortfall >= 0);
