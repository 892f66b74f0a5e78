//! The Stripe flags → [`StripeSettings`], or one line per problem. Secrets are never echoed.

use std::time::Duration;

use super::Problems;
use crate::config::StripeArgs;
use crate::secret::SecretString;

pub struct StripeSettings {
    pub secret_key: SecretString,
    /// The current signing secret first, then the previous one during a roll.
    pub webhook_secrets: Vec<SecretString>,
    /// An origin, e.g. `https://api.stripe.com`.
    pub api_base: String,
    pub timeout: Duration,
    pub resync_every: Option<Duration>,
    /// `sk_live_…`/`rk_live_…`: customers are bound as live ones.
    pub livemode: bool,
    /// How long an agent's data is kept after its subscription ended.
    pub retention: Duration,
}

fn looks_like(secret: &SecretString, prefixes: &[&str]) -> bool {
    let text = secret.expose();
    prefixes.iter().any(|p| text.starts_with(p)) && text.len() > 8 && text.bytes().all(|b| b.is_ascii_graphic())
}

/// `None` when a flag is wrong (noted in `problems`); `Some(None)` when billing is off.
pub(super) fn stripe(
    args: &StripeArgs,
    catalog: Option<&billing::plans::Catalog>,
    problems: &mut Problems,
) -> Option<Option<StripeSettings>> {
    let before = problems.lines().len();
    let api_base = problems.check("--stripe-api-base", super::normalize_origin(&args.stripe_api_base));
    if args.stripe_timeout_secs == 0 {
        problems.push("--stripe-timeout-secs is 0, which would fail every Stripe call; it must be at least 1");
    }
    let resync_every = billing::plans::parse_duration(&args.stripe_resync_interval)
        .map_err(|e| problems.push(format!("--stripe-resync-interval: {e}")))
        .ok();
    let secrets: Vec<&SecretString> =
        [&args.stripe_webhook_secret, &args.stripe_webhook_secret_previous].into_iter().flatten().collect();
    for secret in &secrets {
        if !looks_like(secret, &["whsec_"]) {
            problems.push("--stripe-webhook-secret must be the endpoint's signing secret, whsec_ and then letters");
        }
    }
    match &args.stripe_secret_key {
        None if !secrets.is_empty() => {
            problems.push("--stripe-webhook-secret needs --stripe-secret-key (ROOST_STRIPE_SECRET_KEY)");
        }
        None => {}
        Some(key) => {
            if !looks_like(key, &["sk_", "rk_"]) {
                problems.push("--stripe-secret-key must be a Stripe secret key (sk_… or rk_…)");
            }
            if args.stripe_webhook_secret.is_none() {
                problems.push(
                    "--stripe-secret-key needs --stripe-webhook-secret (ROOST_STRIPE_WEBHOOK_SECRET): without \
                     webhooks no payment would ever be credited",
                );
            }
            if catalog.is_none_or(|c| c.plans.is_empty() && c.packs.is_empty()) {
                problems.push(
                    "--stripe-secret-key needs --plans with at least one plan or pack, keyed by your Stripe Price IDs",
                );
            }
        }
    }
    if problems.lines().len() > before {
        return None;
    }
    let (Some(api_base), Some(resync_every)) = (api_base, resync_every) else { return None };
    let Some(secret_key) = args.stripe_secret_key.clone() else { return Some(None) };
    let livemode = secret_key.expose().contains("_live_");
    Some(Some(StripeSettings {
        secret_key,
        webhook_secrets: secrets.into_iter().cloned().collect(),
        api_base,
        timeout: Duration::from_secs(args.stripe_timeout_secs),
        resync_every,
        livemode,
        retention: Duration::from_secs(u64::from(args.billing_retention_days) * 86_400),
    }))
}
