//! The fake's objects, in Stripe's shapes (API 2025-03-31.basil and later: periods on the
//! subscription's items, the invoice's subscription under `parent`), and the events each change
//! produces, each carrying a snapshot of its object as Stripe's do.

use serde_json::{Map, Value, json};

use super::{API_VERSION, Event, PERIOD_SECS, State};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` + `len` letters and digits, unique and deterministic per fake.
pub(crate) fn new_id(state: &mut State, prefix: &str, len: usize) -> String {
    state.counter += 1;
    let mut n = state.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ state.counter;
    let mut tail = Vec::with_capacity(len);
    for i in 0..len {
        // The counter itself at the end keeps ids unique; the mixed bits make them look random.
        let digit = if i + 6 >= len {
            (state.counter / 62u64.pow((len - 1 - i) as u32)) % 62
        } else {
            let d = n % 62;
            n = (n / 62) ^ (n << 7);
            d
        };
        tail.push(ALPHABET[digit as usize]);
    }
    format!("{prefix}{}", String::from_utf8(tail).unwrap_or_default())
}

fn event(state: &mut State, kind: &str, object: &Value) -> Event {
    let id = new_id(state, "evt_1", 23);
    let body = json!({
        "id": id,
        "object": "event",
        "api_version": API_VERSION,
        "created": state.now,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    });
    let event = Event { id, kind: kind.to_string(), body: body.to_string() };
    state.events.push(event.clone());
    event
}

pub(crate) fn metadata_of(form: &[(String, String)], prefix: &str) -> Map<String, Value> {
    form.iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
            Some((key.to_string(), Value::String(v.clone())))
        })
        .collect()
}

pub(crate) fn price(id: &str, recurring: bool) -> Value {
    json!({
        "id": id,
        "object": "price",
        "active": true,
        "currency": "usd",
        "livemode": false,
        "product": "prod_TestProduct01",
        "recurring": if recurring { json!({"interval": "month", "interval_count": 1, "usage_type": "licensed"}) } else { Value::Null },
        "type": if recurring { "recurring" } else { "one_time" },
    })
}

fn subscription(state: &mut State, customer: &str, price_id: &str, metadata: Map<String, Value>) -> Value {
    let id = new_id(state, "sub_1", 23);
    let item = new_id(state, "si_", 14);
    let start = state.now;
    json!({
        "id": id,
        "object": "subscription",
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "collection_method": "charge_automatically",
        "created": start,
        "currency": "usd",
        "customer": customer,
        "ended_at": null,
        "items": {
            "object": "list",
            "data": [{
                "id": item,
                "object": "subscription_item",
                "current_period_start": start,
                "current_period_end": start + PERIOD_SECS,
                "price": price(price_id, true),
                "quantity": 1,
                "subscription": id,
            }],
            "has_more": false,
            "url": format!("/v1/subscription_items?subscription={id}"),
        },
        "latest_invoice": null,
        "livemode": false,
        "metadata": metadata,
        "start_date": start,
        "status": "active",
    })
}

fn invoice(state: &mut State, sub: &Value, reason: &str, paid: bool) -> Value {
    let id = new_id(state, "in_1", 23);
    let item = &sub["items"]["data"][0];
    let (start, end) = (item["current_period_start"].clone(), item["current_period_end"].clone());
    json!({
        "id": id,
        "object": "invoice",
        "amount_due": 14_900,
        "amount_paid": if paid { 14_900 } else { 0 },
        "attempted": true,
        "billing_reason": reason,
        "created": state.now,
        "currency": "usd",
        "customer": sub["customer"],
        "lines": {
            "object": "list",
            "data": [{
                "id": new_id(state, "il_1", 23),
                "object": "line_item",
                "period": { "start": start, "end": end },
                "pricing": { "type": "price_details", "price_details": { "price": item["price"]["id"], "product": "prod_TestProduct01" } },
                "quantity": 1,
            }],
            "has_more": false,
        },
        "livemode": false,
        "parent": { "type": "subscription_details", "subscription_details": { "subscription": sub["id"], "metadata": sub["metadata"] } },
        "period_start": start,
        "period_end": end,
        "status": if paid { "paid" } else { "open" },
    })
}

/// A succeeded payment and its charge; the card it used becomes the customer's saved one.
pub(crate) fn payment(state: &mut State, customer: &str, amount: i64, metadata: Value) -> Value {
    let pi = new_id(state, "pi_3", 24);
    let charge = new_id(state, "ch_3", 24);
    let card = format!("pm_card_{}", customer.trim_start_matches("cus_"));
    state.charges.insert(
        charge.clone(),
        json!({"id": charge, "object": "charge", "amount": amount, "amount_refunded": 0, "currency": "usd",
               "customer": customer, "disputed": false, "paid": true, "payment_intent": pi,
               "payment_method": card, "refunded": false, "status": "succeeded", "created": state.now}),
    );
    let intent = json!({"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
                        "currency": "usd", "customer": customer, "latest_charge": charge, "metadata": metadata,
                        "payment_method": card, "status": "succeeded", "created": state.now, "livemode": false});
    state.payment_intents.insert(pi.clone(), intent.clone());
    if let Some(c) = state.customers.get_mut(customer) {
        c["invoice_settings"] = json!({"default_payment_method": card});
    }
    intent
}

pub(crate) fn refund(state: &mut State, pi: &str, full: bool) -> Vec<Event> {
    let Some(charge_id) = state.payment_intents.get(pi).and_then(|p| p["latest_charge"].as_str()).map(str::to_string)
    else {
        return Vec::new();
    };
    let Some(mut charge) = state.charges.get(&charge_id).cloned() else { return Vec::new() };
    let amount = charge["amount"].as_i64().unwrap_or(0);
    charge["amount_refunded"] = json!(if full { amount } else { amount / 2 });
    charge["refunded"] = json!(full);
    state.charges.insert(charge_id, charge.clone());
    vec![event(state, "charge.refunded", &charge)]
}

pub(crate) fn dispute(state: &mut State, pi: &str) -> Vec<Event> {
    let Some(charge_id) = state.payment_intents.get(pi).and_then(|p| p["latest_charge"].as_str()).map(str::to_string)
    else {
        return Vec::new();
    };
    let id = new_id(state, "dp_1", 23);
    let amount = state.charges.get(&charge_id).map_or(0, |c| c["amount"].as_i64().unwrap_or(0));
    if let Some(c) = state.charges.get_mut(&charge_id) {
        c["disputed"] = json!(true);
    }
    let dispute = json!({"id": id, "object": "dispute", "amount": amount, "charge": charge_id, "currency": "usd",
                         "payment_intent": pi, "reason": "fraudulent", "status": "needs_response", "created": state.now});
    state.disputes.insert(id, dispute.clone());
    vec![event(state, "charge.dispute.created", &dispute)]
}

/// An off-session PaymentIntent (`confirm=true`) on the saved card: it succeeds at once, with
/// `payment_intent.succeeded`, or fails as a card would without one.
pub(crate) fn create_payment_intent(
    state: &mut State,
    customer: &str,
    amount: i64,
    card: &str,
    metadata: Value,
) -> Result<Value, Value> {
    let saved = state
        .customers
        .get(customer)
        .and_then(|c| c["invoice_settings"]["default_payment_method"].as_str().map(str::to_string));
    if saved.as_deref() != Some(card) {
        return Err(json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                    "message": format!("No such PaymentMethod: '{card}'")}}));
    }
    let intent = payment(state, customer, amount, metadata);
    event(state, "payment_intent.succeeded", &intent);
    Ok(intent)
}

pub(crate) fn complete_checkout(state: &mut State, session_id: &str) -> Vec<Event> {
    let Some(mut session) = state.sessions.get(session_id).cloned() else { return Vec::new() };
    let customer = session["customer"].as_str().unwrap_or_default().to_string();
    let price_id = session["line_items"]["data"][0]["price"]["id"].as_str().unwrap_or_default().to_string();
    let mut events = Vec::new();
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    if session["mode"] == "subscription" {
        let metadata = session["subscription_data"]["metadata"].as_object().cloned().unwrap_or_default();
        let mut sub = subscription(state, &customer, &price_id, metadata);
        if let Some(c) = state.customers.get_mut(&customer) {
            c["invoice_settings"] =
                json!({"default_payment_method": format!("pm_card_{}", customer.trim_start_matches("cus_"))});
        }
        let invoice = invoice(state, &sub, "subscription_create", true);
        sub["latest_invoice"] = invoice["id"].clone();
        session["subscription"] = sub["id"].clone();
        session["invoice"] = invoice["id"].clone();
        state.subscriptions.insert(sub["id"].as_str().unwrap_or_default().to_string(), sub.clone());
        state.invoices.insert(invoice["id"].as_str().unwrap_or_default().to_string(), invoice.clone());
        state.sessions.insert(session_id.to_string(), session.clone());
        events.push(event(state, "checkout.session.completed", &public_session(&session)));
        events.push(event(state, "customer.subscription.created", &sub));
        events.push(event(state, "invoice.paid", &invoice));
    } else {
        let intent = payment(state, &customer, 1_000, session["metadata"].clone());
        session["payment_intent"] = intent["id"].clone();
        state.sessions.insert(session_id.to_string(), session.clone());
        events.push(event(state, "checkout.session.completed", &public_session(&session)));
    }
    events
}

pub(crate) fn renew(state: &mut State, sub_id: &str, paid: bool) -> Vec<Event> {
    let Some(mut sub) = state.subscriptions.get(sub_id).cloned() else { return Vec::new() };
    let item = &mut sub["items"]["data"][0];
    let end = item["current_period_end"].as_i64().unwrap_or(state.now);
    item["current_period_start"] = json!(end);
    item["current_period_end"] = json!(end + PERIOD_SECS);
    let invoice = invoice(state, &sub, "subscription_cycle", paid);
    sub["latest_invoice"] = invoice["id"].clone();
    sub["status"] = json!(if paid { "active" } else { "past_due" });
    state.subscriptions.insert(sub_id.to_string(), sub.clone());
    state.invoices.insert(invoice["id"].as_str().unwrap_or_default().to_string(), invoice.clone());
    let kind = if paid { "invoice.paid" } else { "invoice.payment_failed" };
    vec![event(state, kind, &invoice), event(state, "customer.subscription.updated", &sub)]
}

pub(crate) fn change_price(state: &mut State, sub_id: &str, price_id: &str) -> Vec<Event> {
    let Some(mut sub) = state.subscriptions.get(sub_id).cloned() else { return Vec::new() };
    sub["items"]["data"][0]["price"] = price(price_id, true);
    state.subscriptions.insert(sub_id.to_string(), sub.clone());
    vec![event(state, "customer.subscription.updated", &sub)]
}

pub(crate) fn set_status(state: &mut State, sub_id: &str, status: &str) -> Vec<Event> {
    let Some(mut sub) = state.subscriptions.get(sub_id).cloned() else { return Vec::new() };
    sub["status"] = json!(status);
    state.subscriptions.insert(sub_id.to_string(), sub.clone());
    vec![event(state, "customer.subscription.updated", &sub)]
}

pub(crate) fn cancel(state: &mut State, sub_id: &str) -> Vec<Event> {
    let Some(mut sub) = state.subscriptions.get(sub_id).cloned() else { return Vec::new() };
    sub["status"] = json!("canceled");
    sub["canceled_at"] = json!(state.now);
    sub["ended_at"] = json!(state.now);
    state.subscriptions.insert(sub_id.to_string(), sub.clone());
    vec![event(state, "customer.subscription.deleted", &sub)]
}

/// A session as the API shows it: `line_items` only when expanded.
pub(crate) fn public_session(session: &Value) -> Value {
    let mut shown = session.clone();
    if let Some(map) = shown.as_object_mut() {
        map.remove("line_items");
        map.remove("subscription_data");
    }
    shown
}
