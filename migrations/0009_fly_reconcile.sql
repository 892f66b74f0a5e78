-- Image rollouts the Fly reconciler stopped: a canary batch of `image` failed its health check
-- and was rolled back, so later rounds (in any instance) do not start that rollout again. A new
-- --fly-image is a new row's key; deploying the old image again needs no row.
CREATE TABLE fly_rollouts (
    image TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    failed_at INTEGER NOT NULL
);
