//! The fake's HTTP side: one handler that records, authenticates, injects faults, replays
//! idempotent POSTs and routes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::objects::{cancel, create_payment_intent, metadata_of, new_id, price, public_session};
use super::{Fault, RecordedRequest, Shared, State, error_body, lock};

fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn answer(status: u16, body: Value) -> Response {
    let mut res =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response();
    if status >= 500 {
        res.headers_mut().insert("stripe-should-retry", "true".parse().expect("a header value"));
    }
    res
}

fn fault_answer(status: u16) -> Response {
    let body = match status {
        402 => json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                                 "message": "Your card was declined."}}),
        429 => error_body("rate_limit_error", "Too many requests hit the API too quickly."),
        s if s >= 500 => error_body("api_error", "An error occurred with our connection to Stripe."),
        _ => error_body("invalid_request_error", "Injected failure."),
    };
    answer(status, body)
}

pub(crate) async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = pairs(uri.query().unwrap_or_default().as_bytes());
    let form = if method == Method::POST { pairs(&body) } else { Vec::new() };
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        form: form.clone(),
    };
    lock(&shared.requests).push(recorded);

    let expected = format!("Bearer {}", shared.secret_key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return answer(401, error_body("invalid_request_error", "Invalid API Key provided: sk_test_********"));
    }
    let fault = {
        let mut faults = lock(&shared.faults);
        let at = faults.iter().position(|(prefix, _)| path.starts_with(prefix.as_str()));
        at.and_then(|i| faults.remove(i)).map(|(_, f)| f)
    };
    match fault {
        Some(Fault::Status(status)) => return fault_answer(status),
        Some(Fault::Timeout) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return fault_answer(504);
        }
        None => {}
    }

    let mut state = lock(&shared.state);
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let fingerprint = format!("{method} {path} {}", String::from_utf8_lossy(&body));
    if method == Method::POST
        && let Some(key) = &key
        && let Some((seen, status, saved)) = state.idempotency.get(key)
    {
        if *seen != fingerprint {
            return answer(
                400,
                json!({"error": {"type": "idempotency_error",
                                 "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}}),
            );
        }
        return answer(*status, saved.clone());
    }
    let (status, body) = route(&mut state, &method, &path, &query, &form);
    if method == Method::POST
        && let Some(key) = key
    {
        state.idempotency.insert(key, (fingerprint, status, body.clone()));
    }
    answer(status, body)
}

fn missing(name: &str) -> (u16, Value) {
    (400, error_body("invalid_request_error", &format!("Missing required param: {name}.")))
}

fn no_such(kind: &str, id: &str) -> (u16, Value) {
    (
        404,
        json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                            "message": format!("No such {kind}: '{id}'")}}),
    )
}

fn route(
    state: &mut State,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    form: &[(String, String)],
) -> (u16, Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "customers"]) => {
            let id = new_id(state, "cus_", 14);
            let customer = json!({
                "id": id, "object": "customer", "created": state.now, "email": field(form, "email"),
                "livemode": false, "metadata": metadata_of(form, "metadata"),
                "invoice_settings": {"default_payment_method": null},
            });
            state.customers.insert(id, customer.clone());
            (200, customer)
        }
        ("GET", ["v1", "customers", id]) => match state.customers.get(*id) {
            Some(c) => (200, c.clone()),
            None => no_such("customer", id),
        },
        ("POST", ["v1", "checkout", "sessions"]) => {
            let Some(price_id) = field(form, "line_items[0][price]") else { return missing("line_items[0][price]") };
            let Some(mode) = field(form, "mode") else { return missing("mode") };
            let Some(customer) = field(form, "customer") else { return missing("customer") };
            if !state.customers.contains_key(customer) {
                return no_such("customer", customer);
            }
            let id = new_id(state, "cs_test_a1", 58);
            let session = json!({
                "id": id,
                "object": "checkout.session",
                "cancel_url": field(form, "cancel_url"),
                "client_reference_id": field(form, "client_reference_id"),
                "created": state.now,
                "customer": customer,
                "expires_at": state.now + 86_400,
                "livemode": false,
                "metadata": metadata_of(form, "metadata"),
                "mode": mode,
                "payment_status": "unpaid",
                "status": "open",
                "subscription": null,
                "success_url": field(form, "success_url"),
                "url": format!("https://checkout.stripe.com/c/pay/{id}"),
                "line_items": {
                    "object": "list",
                    "data": [{ "id": new_id(state, "li_1", 23), "object": "item", "quantity": 1,
                               "price": price(price_id, mode == "subscription") }],
                    "has_more": false,
                    "url": format!("/v1/checkout/sessions/{id}/line_items"),
                },
                "subscription_data": { "metadata": metadata_of(form, "subscription_data[metadata]") },
            });
            state.sessions.insert(id, session.clone());
            (200, public_session(&session))
        }
        ("GET", ["v1", "checkout", "sessions", id]) => match state.sessions.get(*id) {
            Some(session) => {
                let expand = query.iter().any(|(k, v)| k == "expand[]" && v == "line_items");
                let mut shown = public_session(session);
                if expand {
                    shown["line_items"] = session["line_items"].clone();
                }
                (200, shown)
            }
            None => no_such("checkout.session", id),
        },
        ("POST", ["v1", "billing_portal", "sessions"]) => {
            let Some(customer) = field(form, "customer") else { return missing("customer") };
            if !state.customers.contains_key(customer) {
                return no_such("customer", customer);
            }
            let id = new_id(state, "bps_1", 23);
            let portal = json!({
                "id": id, "object": "billing_portal.session", "created": state.now, "customer": customer,
                "livemode": false, "return_url": field(form, "return_url"),
                "url": format!("https://billing.stripe.com/p/session/test_{id}"),
            });
            state.portal_sessions.insert(id, portal.clone());
            (200, portal)
        }
        ("GET", ["v1", "subscriptions"]) => {
            let customer = query.iter().find(|(k, _)| k == "customer").map(|(_, v)| v.as_str());
            let data: Vec<Value> = state
                .subscriptions
                .values()
                .filter(|s| customer.is_none_or(|c| s["customer"] == c))
                .rev()
                .take(10)
                .cloned()
                .collect();
            (200, json!({"object": "list", "data": data, "has_more": false, "url": "/v1/subscriptions"}))
        }
        ("GET", ["v1", "subscriptions", id]) => match state.subscriptions.get(*id) {
            Some(s) => (200, s.clone()),
            None => no_such("subscription", id),
        },
        ("DELETE", ["v1", "subscriptions", id]) => {
            let Some(sub) = state.subscriptions.get(*id) else { return no_such("subscription", id) };
            if sub["status"] != "canceled" {
                cancel(state, id);
            }
            (200, state.subscriptions.get(*id).cloned().unwrap_or_default())
        }
        ("GET", ["v1", "charges", id]) => match state.charges.get(*id) {
            Some(c) => (200, c.clone()),
            None => no_such("charge", id),
        },
        ("GET", ["v1", "disputes", id]) => match state.disputes.get(*id) {
            Some(d) => (200, d.clone()),
            None => no_such("dispute", id),
        },
        ("GET", ["v1", "payment_intents", id]) => match state.payment_intents.get(*id) {
            Some(p) => (200, p.clone()),
            None => no_such("payment_intent", id),
        },
        ("POST", ["v1", "payment_intents"]) => {
            let Some(customer) = field(form, "customer") else { return missing("customer") };
            let Some(card) = field(form, "payment_method") else { return missing("payment_method") };
            let Some(amount) = field(form, "amount").and_then(|a| a.parse::<i64>().ok()).filter(|a| *a > 0) else {
                return missing("amount");
            };
            if field(form, "currency").is_none() {
                return missing("currency");
            }
            let (customer, card) = (customer.to_string(), card.to_string());
            let metadata = Value::Object(metadata_of(form, "metadata"));
            match create_payment_intent(state, &customer, amount, &card, metadata) {
                Ok(intent) => (200, intent),
                Err(error) => (400, error),
            }
        }
        ("GET", ["v1", "invoices", id]) => match state.invoices.get(*id) {
            Some(i) => (200, i.clone()),
            None => no_such("invoice", id),
        },
        _ => (404, error_body("invalid_request_error", &format!("Unrecognized request URL ({method}: {path})."))),
    }
}
