//! Plans, credit packs and model prices, from the operator's TOML file (`--plans`) or built-in
//! defaults. Plans and packs are keyed by their Stripe Price ID; with billing off everyone is on
//! the free plan. Credits are integers: $10 buys 1,000 in the shipped example.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// Prices are in credits per million tokens; a call costs at least one credit when it used any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input_per_million: u64,
    pub output_per_million: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    /// Credits granted each paid month (use them or lose them at the period's end).
    pub monthly_credits: u64,
    /// The Fly machine size, as `--fly-machine-size` takes it (`shared-cpu-2x`,
    /// `performance-1x:4096`); the server's flag if unset. The gateway checks it with the
    /// provisioner's parser when the file loads. The local provider ignores it.
    #[serde(default)]
    pub machine_size: Option<String>,
    /// Whether an idle agent is suspended (it resumes in well under a second, memory intact)
    /// rather than stopped. Fly suspends machines of up to 2 GB only; larger ones are stopped.
    #[serde(default)]
    pub suspend: bool,
    /// When an unused agent is stopped (`30m`, `2h`; `0` = never); the server's flag if unset.
    #[serde(default, with = "duration_text")]
    pub idle_timeout: Option<Option<Duration>>,
    /// Whether Telegram and Discord bots may be connected.
    #[serde(default)]
    pub channels: bool,
    /// The monthly price in cents, shown to users (Stripe's Price is what is charged).
    #[serde(default)]
    pub amount_cents: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    pub name: String,
    pub credits: u64,
    /// The price in cents: shown to users, and what an auto-refill charges (in `usd`). A pack
    /// without one cannot be an auto-refill.
    #[serde(default)]
    pub amount_cents: Option<u64>,
}

/// The whole file, checked as a unit by [`Catalog::from_toml`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Everyone's plan while billing is off, and the plan of users with no subscription.
    pub free: Plan,
    /// Keyed by Stripe Price ID (`price_…`).
    #[serde(default)]
    pub plans: BTreeMap<String, Plan>,
    /// One-off Checkout prices, keyed by Stripe Price ID.
    #[serde(default)]
    pub packs: BTreeMap<String, Pack>,
    /// Keyed by the model id agents send.
    #[serde(default)]
    pub models: BTreeMap<String, ModelPrice>,
    /// The price of a model not listed; without one, unlisted models are refused.
    #[serde(default)]
    pub default_model_price: Option<ModelPrice>,
}

/// A file that cannot be used, in a sentence for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(String);

/// What Roost charges when the operator gives no file: Claude Sonnet's list price ($3 / $15 per
/// million tokens) at $10 per 1,000 credits.
pub const BUILT_IN_PRICE: ModelPrice = ModelPrice { input_per_million: 300, output_per_million: 1_500 };

/// Credits a free account gets each month when the operator gives no file.
pub const BUILT_IN_FREE_CREDITS: u64 = 1_000;

impl Catalog {
    /// The built-in catalog: a free plan, and `model` (the server's `--llm-model`) at
    /// [`BUILT_IN_PRICE`]; any other model is refused.
    pub fn built_in(model: Option<&str>) -> Self {
        Self {
            free: Plan {
                name: "Free".into(),
                monthly_credits: BUILT_IN_FREE_CREDITS,
                machine_size: None,
                suspend: false,
                idle_timeout: None,
                channels: true,
                amount_cents: None,
            },
            plans: BTreeMap::new(),
            packs: BTreeMap::new(),
            models: model.map(|m| (m.to_string(), BUILT_IN_PRICE)).into_iter().collect(),
            default_model_price: None,
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        let catalog: Self = toml::from_str(text).map_err(|e| CatalogError(e.to_string()))?;
        catalog.check()?;
        Ok(catalog)
    }

    fn check(&self) -> Result<(), CatalogError> {
        for id in self.plans.keys().chain(self.packs.keys()) {
            if !id.starts_with("price_") {
                return Err(CatalogError(format!("{id:?} is not a Stripe Price ID (they start with price_)")));
            }
        }
        if let Some(id) = self.plans.keys().find(|id| self.packs.contains_key(*id)) {
            return Err(CatalogError(format!("{id} is both a plan and a pack")));
        }
        if let Some((id, _)) = self.packs.iter().find(|(_, p)| p.credits == 0) {
            return Err(CatalogError(format!("the pack {id} grants no credits")));
        }
        if self.models.is_empty() && self.default_model_price.is_none() {
            return Err(CatalogError(
                "no model has a price: add [models.\"<model id>\"] or default_model_price".into(),
            ));
        }
        Ok(())
    }

    /// Every plan with its key (`free` for the free plan), for checks billing cannot make: a
    /// plan's `machine_size` is the provisioner's to parse.
    pub fn all_plans(&self) -> impl Iterator<Item = (&str, &Plan)> {
        self.plans.iter().map(|(id, p)| (id.as_str(), p)).chain([("free", &self.free)])
    }

    /// The price of a call to `model`, if it is on offer.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        self.models.get(model).copied().or(self.default_model_price)
    }

    /// The models on offer, for the refusal of any other.
    pub fn offered(&self) -> Vec<&str> {
        self.models.keys().map(String::as_str).collect()
    }

    pub fn plan(&self, price_id: &str) -> Option<&Plan> {
        self.plans.get(price_id)
    }

    pub fn pack(&self, price_id: &str) -> Option<&Pack> {
        self.packs.get(price_id)
    }
}

impl ModelPrice {
    /// Credits for this many tokens, rounded up; nothing used costs nothing.
    pub fn credits(self, input_tokens: u64, output_tokens: u64) -> u64 {
        let micro = u128::from(input_tokens) * u128::from(self.input_per_million)
            + u128::from(output_tokens) * u128::from(self.output_per_million);
        u64::try_from(micro.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// `30m`, `45s`, `2h`, `90` (seconds) or `0` (`None`: never).
pub fn parse_duration(raw: &str) -> Result<Option<Duration>, String> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = digits.parse().map_err(|_| format!("{raw:?} is not a duration like 30m, 45s or 0"))?;
    let per_unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{raw:?} is not a duration like 30m, 45s or 0")),
    };
    // Checked: a configured value must not overflow (and panic in a debug build).
    let secs = n.checked_mul(per_unit).ok_or_else(|| format!("{raw:?} is longer than any timer"))?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// `idle_timeout = "30m"` (or `"0"`, never).
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Duration>>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid_and_mirrors_the_seed_product() {
        let catalog = Catalog::from_toml(include_str!("../plans.example.toml")).unwrap();
        let names: Vec<&str> = catalog.plans.values().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), 3);
        for name in ["Starter", "Pro", "Business"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        assert!(catalog.plans.values().all(|p| p.monthly_credits > 0));
        assert!(!catalog.packs.is_empty());
        assert!(catalog.price("claude-sonnet-4-5").is_some());
    }

    #[test]
    fn prices_round_up_and_nothing_costs_nothing() {
        let price = BUILT_IN_PRICE;
        assert_eq!(price.credits(0, 0), 0);
        assert_eq!(price.credits(1, 0), 1, "a token costs at least a credit");
        assert_eq!(price.credits(1_000_000, 0), 300);
        assert_eq!(price.credits(10_000, 2_000), 6, "3 + 3");
        assert_eq!(price.credits(u64::MAX, u64::MAX), (u128::from(u64::MAX) * 1_800).div_ceil(1_000_000) as u64);
    }

    #[test]
    fn only_priced_models_are_offered() {
        let catalog = Catalog::built_in(Some("gpt-test"));
        assert_eq!(catalog.price("gpt-test"), Some(BUILT_IN_PRICE));
        assert_eq!(catalog.price("gpt-4-32k-very-expensive"), None);
        assert_eq!(catalog.offered(), vec!["gpt-test"]);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let free = "[free]\nname = \"Free\"\nmonthly_credits = 10\n";
        let priced = "[models.m]\ninput_per_million = 1\noutput_per_million = 2\n";
        for (text, says) in [
            (free.to_string(), "no model has a price"),
            (format!("{free}{priced}[plans.starter]\nname = \"S\"\nmonthly_credits = 1\n"), "not a Stripe Price ID"),
            (format!("{free}{priced}[packs.price_a]\nname = \"A\"\ncredits = 0\n"), "grants no credits"),
            (format!("{free}{priced}surprise = 1\n"), "unknown field"),
            (
                format!("{free}{priced}[plans.price_p]\nname = \"P\"\nmonthly_credits = 1\nidle_timeout = \"soon\"\n"),
                "not a duration",
            ),
        ] {
            let error = Catalog::from_toml(&text).unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
        }
        let plan = Catalog::from_toml(&format!(
            "{free}{priced}[plans.price_p]\nname = \"P\"\nmonthly_credits = 1\nidle_timeout = \"0\"\n"
        ))
        .unwrap();
        assert_eq!(plan.plan("price_p").unwrap().idle_timeout, Some(None), "0 means never");
    }
}
