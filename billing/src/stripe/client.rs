//! The few Stripe calls Roost makes, through `async-stripe` (pinned `=1.0.0-rc.10`): its typed
//! request builders encode the forms, its hyper client (rustls on aws-lc-rs) sends them.
//!
//! Two choices around the crate's known problems (research §3.4–3.5, README "Billing"):
//! - Responses are read into the small, lenient structs below (only the fields Roost uses,
//!   every one optional) instead of the crate's generated objects, which refuse a whole
//!   response when one required field is missing or renamed (its API-version drift issues).
//! - Retries are ours: every POST is sent with `RequestStrategy::Idempotent(key)` and retried
//!   with the same key, so a retry can never create a second customer or session; the crate's
//!   `Retry` strategies pick a random key per call and its `Retry(n)` has no backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::invoice::RetrieveInvoice;
use stripe_billing::subscription::{
    CancelSubscription, ListSubscription, ListSubscriptionStatus, RetrieveSubscription,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
    RetrieveCheckoutSession,
};
use stripe_client_core::{RequestBuilder, StripeMethod, StripeRequest};
use stripe_core::customer::CreateCustomer;

pub use stripe_shared::version::VERSION as API_VERSION;

/// How the client talks to Stripe.
#[derive(Clone)]
pub struct Options {
    /// `https://api.stripe.com`, or a fake's address in tests (an origin, no path).
    pub api_base: String,
    /// Per attempt, body included.
    pub timeout: Duration,
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// Before the second attempt; doubled for each one after.
    pub backoff: Duration,
}

impl Options {
    pub fn new(api_base: &str, timeout: Duration) -> Self {
        Self { api_base: api_base.to_string(), timeout, attempts: 3, backoff: Duration::from_millis(250) }
    }
}

#[derive(Clone)]
pub struct Stripe {
    client: Client,
    options: Options,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe").field("api_base", &self.options.api_base).finish_non_exhaustive()
    }
}

/// A call that did not succeed, in words safe to log (never the key).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Stripe answered and refused (a 4xx other than 409 and 429): retrying will not help.
    #[error("Stripe refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// No answer, or a transient one, after every attempt.
    #[error("Stripe did not answer usefully after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
}

impl CallError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            Self::Unavailable { .. } => None,
        }
    }
}

// The lenient response objects. miniserde (the crate's own deserializer) fills a missing
// `Option` with `None` and skips fields not named here.

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct Customer {
    pub id: String,
}

#[derive(Debug, Clone, Default, miniserde::Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    pub has_more: Option<bool>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct Price {
    pub id: String,
    pub recurring: Option<Recurring>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct Recurring {
    pub usage_type: Option<String>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct LineItem {
    pub price: Option<Price>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub created: Option<i64>,
    pub url: Option<String>,
    pub mode: Option<String>,
    pub status: Option<String>,
    pub payment_status: Option<String>,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub client_reference_id: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub line_items: Option<List<LineItem>>,
    /// A pack's payment (its id, not expanded): a refund or dispute of it is matched by this.
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct Charge {
    pub id: String,
    pub payment_intent: Option<String>,
    pub amount: Option<i64>,
    pub amount_refunded: Option<i64>,
    pub refunded: Option<bool>,
    pub disputed: Option<bool>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct Dispute {
    pub id: String,
    pub charge: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: Option<String>,
    pub amount: Option<i64>,
    pub customer: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub latest_charge: Option<String>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct InvoiceSettings {
    pub default_payment_method: Option<String>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct CustomerDetails {
    pub id: String,
    pub deleted: Option<bool>,
    pub invoice_settings: Option<InvoiceSettings>,
}

/// An off-session charge of a saved card (auto-refill).
pub struct NewCharge<'a> {
    pub customer: &'a str,
    pub payment_method: &'a str,
    pub amount_cents: u64,
    pub currency: &'a str,
    pub user_id: &'a str,
    /// The pack's Price ID, kept in the PaymentIntent's metadata.
    pub pack: &'a str,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct PortalSession {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct SubscriptionItem {
    pub price: Option<Price>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    pub status: String,
    pub cancel_at_period_end: Option<bool>,
    pub cancel_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub items: Option<List<SubscriptionItem>>,
    /// Its id (not expanded).
    pub latest_invoice: Option<String>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct PriceDetails {
    pub price: Option<String>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct LinePricing {
    pub price_details: Option<PriceDetails>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct InvoiceLine {
    pub period: Option<Period>,
    pub pricing: Option<LinePricing>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct SubscriptionDetails {
    pub subscription: Option<String>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct InvoiceParent {
    pub subscription_details: Option<SubscriptionDetails>,
}

#[derive(Debug, Clone, miniserde::Deserialize)]
pub struct Invoice {
    pub id: String,
    pub customer: Option<String>,
    pub status: Option<String>,
    pub billing_reason: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    /// Since API 2025-03-31.basil the subscription is under `parent`.
    pub parent: Option<InvoiceParent>,
    pub lines: Option<List<InvoiceLine>>,
}

impl Subscription {
    /// The plan's item: the licensed one (a metered overage price may sit beside it).
    pub fn plan_item(&self) -> Option<&SubscriptionItem> {
        let items = self.items.as_ref()?;
        let licensed = |i: &&SubscriptionItem| {
            i.price.as_ref().and_then(|p| p.recurring.as_ref()).and_then(|r| r.usage_type.as_deref()) != Some("metered")
        };
        items.data.iter().find(licensed).or(items.data.first())
    }

    pub fn user_id(&self) -> Option<&str> {
        self.metadata.as_ref()?.get("user_id").map(String::as_str)
    }
}

impl Invoice {
    pub fn subscription(&self) -> Option<&str> {
        self.parent.as_ref()?.subscription_details.as_ref()?.subscription.as_deref()
    }

    /// The first line's price and period: the plan the invoice paid for, and for how long.
    pub fn line(&self) -> (Option<&str>, Option<(i64, i64)>) {
        let Some(line) = self.lines.as_ref().and_then(|l| l.data.first()) else { return (None, None) };
        let price = line.pricing.as_ref().and_then(|p| p.price_details.as_ref()).and_then(|d| d.price.as_deref());
        (price, line.period.as_ref().map(|p| (p.start, p.end)))
    }
}

impl CheckoutSession {
    pub fn price(&self) -> Option<&str> {
        let item = self.line_items.as_ref()?.data.first()?;
        item.price.as_ref().map(|p| p.id.as_str())
    }
}

/// What a Checkout Session is for.
pub enum Purchase<'a> {
    Subscription { price: &'a str },
    Pack { price: &'a str },
}

pub struct NewCheckout<'a> {
    pub purchase: Purchase<'a>,
    pub customer: &'a str,
    pub user_id: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

impl Stripe {
    pub fn new(secret_key: &str, options: Options) -> Result<Self, String> {
        let client = ClientBuilder::new(secret_key)
            .url(options.api_base.clone())
            .timeout(options.timeout)
            .app_info("roost", Some(env!("CARGO_PKG_VERSION").to_string()), None)
            .build()
            .map_err(|e| match e {
                // The crate's message for a bad key names the key's config field, not its value.
                StripeError::ConfigError(m) | StripeError::ClientError(m) => m,
                other => other.to_string(),
            })?;
        Ok(Self { client, options })
    }

    pub async fn create_customer(&self, user_id: &str, email: Option<&str>, key: &str) -> Result<Customer, CallError> {
        let mut request = CreateCustomer::new().metadata(metadata(&[("user_id", user_id)]));
        if let Some(email) = email {
            request = request.email(email);
        }
        self.send(|| request.build(), Some(key)).await
    }

    pub async fn create_checkout(&self, checkout: &NewCheckout<'_>, key: &str) -> Result<CheckoutSession, CallError> {
        let (mode, price) = match checkout.purchase {
            Purchase::Subscription { price } => (stripe_shared::CheckoutSessionMode::Subscription, price),
            Purchase::Pack { price } => (stripe_shared::CheckoutSessionMode::Payment, price),
        };
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(price.to_string());
        item.quantity = Some(1);
        let mut request = CreateCheckoutSession::new()
            .mode(mode)
            .line_items(vec![item])
            .success_url(checkout.success_url)
            .cancel_url(checkout.cancel_url)
            .client_reference_id(checkout.user_id)
            .customer(checkout.customer);
        request = match checkout.purchase {
            Purchase::Subscription { .. } => {
                let mut data = CreateCheckoutSessionSubscriptionData::new();
                data.metadata = Some(metadata(&[("user_id", checkout.user_id)]));
                request
                    .metadata(metadata(&[("user_id", checkout.user_id)]))
                    .subscription_data(data)
                    .allow_promotion_codes(true)
            }
            Purchase::Pack { price } => {
                request.metadata(metadata(&[("user_id", checkout.user_id), ("kind", "credit_pack"), ("pack", price)]))
            }
        };
        self.send(|| request.build(), Some(key)).await
    }

    pub async fn create_portal(&self, customer: &str, return_url: &str, key: &str) -> Result<PortalSession, CallError> {
        let request = CreateBillingPortalSession::new().customer(customer).return_url(return_url);
        self.send(|| request.build(), Some(key)).await
    }

    pub async fn checkout_session(&self, id: &str) -> Result<CheckoutSession, CallError> {
        let request = RetrieveCheckoutSession::new(id).expand(vec!["line_items".to_string()]);
        self.send(|| request.build(), None).await
    }

    pub async fn subscription(&self, id: &str) -> Result<Subscription, CallError> {
        let request = RetrieveSubscription::new(id);
        self.send(|| request.build(), None).await
    }

    /// The customer's subscriptions in any status, newest first (Stripe's order).
    pub async fn subscriptions_of(&self, customer: &str) -> Result<Vec<Subscription>, CallError> {
        let request = ListSubscription::new().customer(customer).status(ListSubscriptionStatus::All).limit(10);
        let list: List<Subscription> = self.send(|| request.build(), None).await?;
        Ok(list.data)
    }

    pub async fn invoice(&self, id: &str) -> Result<Invoice, CallError> {
        let request = RetrieveInvoice::new(id);
        self.send(|| request.build(), None).await
    }

    /// The charge behind a refund or dispute. (The object features for charges, disputes and
    /// payment intents are not compiled in; these few calls use the crate's request builder and
    /// client directly, with the same retries.)
    pub async fn charge(&self, id: &str) -> Result<Charge, CallError> {
        self.send(|| RequestBuilder::new(StripeMethod::Get, format!("/charges/{}", path_id(id))), None).await
    }

    pub async fn dispute(&self, id: &str) -> Result<Dispute, CallError> {
        self.send(|| RequestBuilder::new(StripeMethod::Get, format!("/disputes/{}", path_id(id))), None).await
    }

    pub async fn payment_intent(&self, id: &str) -> Result<PaymentIntent, CallError> {
        self.send(|| RequestBuilder::new(StripeMethod::Get, format!("/payment_intents/{}", path_id(id))), None).await
    }

    pub async fn customer(&self, id: &str) -> Result<CustomerDetails, CallError> {
        self.send(|| RequestBuilder::new(StripeMethod::Get, format!("/customers/{}", path_id(id))), None).await
    }

    /// Charges the saved card at once, off-session (`confirm=true&off_session=true`). A decline
    /// is a [`CallError::Refused`] with status 402.
    pub async fn charge_saved_card(&self, charge: &NewCharge<'_>, key: &str) -> Result<PaymentIntent, CallError> {
        let amount = charge.amount_cents.to_string();
        let form: BTreeMap<&str, &str> = [
            ("amount", amount.as_str()),
            ("currency", charge.currency),
            ("customer", charge.customer),
            ("payment_method", charge.payment_method),
            ("confirm", "true"),
            ("off_session", "true"),
            ("metadata[user_id]", charge.user_id),
            ("metadata[kind]", "auto_refill"),
            ("metadata[pack]", charge.pack),
        ]
        .into_iter()
        .collect();
        self.send(|| RequestBuilder::new(StripeMethod::Post, "/payment_intents").form(&form), Some(key)).await
    }

    /// Cancels the subscription now (`DELETE /v1/subscriptions/{id}`); Stripe answers with it.
    pub async fn cancel_subscription(&self, id: &str, key: &str) -> Result<Subscription, CallError> {
        let request = CancelSubscription::new(id);
        self.send(|| request.build(), Some(key)).await
    }

    /// One call, retried on network errors, timeouts, 409, 429 and 5xx with backoff; a POST
    /// carries `key` on every attempt.
    async fn send<T: miniserde::Deserialize>(
        &self,
        request: impl Fn() -> RequestBuilder,
        key: Option<&str>,
    ) -> Result<T, CallError> {
        let strategy = match key {
            Some(key) => RequestStrategy::Idempotent(
                IdempotencyKey::new(key).map_err(|e| CallError::Refused { status: 0, message: e.to_string() })?,
            ),
            None => RequestStrategy::Once,
        };
        let attempts = self.options.attempts.max(1);
        let mut delay = self.options.backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            let result = request().customize::<T>().request_strategy(strategy.clone()).send(&self.client).await;
            match result {
                Ok(object) => return Ok(object),
                Err(StripeError::Stripe(error, status)) if !matches!(status, 409 | 429 | 500..) => {
                    let message = error.message.clone().unwrap_or_else(|| format!("{:?}", error.type_));
                    return Err(CallError::Refused { status, message });
                }
                Err(StripeError::ConfigError(message)) => return Err(CallError::Refused { status: 0, message }),
                // A 5xx, 409 or 429; no answer; or an answer that is not Stripe's JSON (the crate
                // then cannot tell the status, so it is treated as transient too).
                Err(e) => last = e.to_string(),
            }
            if attempt < attempts {
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
        }
        Err(CallError::Unavailable { attempts, last })
    }
}

/// An id as a path segment: Stripe's ids are letters, digits and `_`; anything else is refused
/// by Stripe as an unknown object rather than reaching another path.
fn path_id(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

fn metadata(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_objects_read_stripes_shapes_and_skip_the_rest() {
        let sub: Subscription = miniserde::json::from_str(
            r#"{"id":"sub_1","object":"subscription","customer":"cus_1","status":"active","unknown":{"a":[1]},
                "metadata":{"user_id":"u1"},"cancel_at":null,
                "items":{"object":"list","data":[
                  {"price":{"id":"price_meter","recurring":{"usage_type":"metered"}}},
                  {"price":{"id":"price_pro","recurring":{"usage_type":"licensed"}},"current_period_start":1,"current_period_end":2}]}}"#,
        )
        .unwrap();
        assert_eq!(sub.plan_item().unwrap().price.as_ref().unwrap().id, "price_pro");
        assert_eq!(sub.user_id(), Some("u1"));
        assert_eq!(sub.cancel_at, None);
        let invoice: Invoice = miniserde::json::from_str(
            r#"{"id":"in_1","status":"paid","parent":{"type":"subscription_details","subscription_details":{"subscription":"sub_1"}},
                "lines":{"data":[{"period":{"start":10,"end":20},"pricing":{"price_details":{"price":"price_pro","product":"prod_1"}}}]}}"#,
        )
        .unwrap();
        assert_eq!(invoice.subscription(), Some("sub_1"));
        assert_eq!(invoice.line(), (Some("price_pro"), Some((10, 20))));
    }
}
