//! The HTTP side: bearer auth, the request log, scripted faults, then the operation.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::faults::{Fault, Reply, reply_for};
use super::machines::reached;
use super::route::{Op, Route, parse, query_pairs};
use super::world::ids;
use super::{Recorded, Shared, lock};

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = shared.authorized(&headers);
    let query = query_pairs(uri.query());
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let route = parse(&method, uri.path());
    shared.record(Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: query.clone(),
        body: body.clone(),
        op: route.as_ref().map(|r| r.op),
        authorized,
    });
    if !authorized {
        // The live API's answer to a bad token (research §1).
        return respond(Reply::error(401, "Authenticate: token validation error"));
    }
    let Some(route) = route else {
        return respond(Reply::error(404, format!("fake fly: no route for {method} {}", uri.path())));
    };
    let fault = lock(&shared.faults).take(route.op);
    match fault {
        None => respond(dispatch(&shared, &route, &query, &body).await),
        Some(Fault::Hang) => {
            let mut stop = shared.shutdown.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(shared.options.hang) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            respond(Reply::error(504, "fake fly: hung"))
        }
        Some(Fault::Reset { after_commit }) => {
            if after_commit {
                let _committed = dispatch(&shared, &route, &query, &body).await;
            }
            // Unwinding ends the connection's task: the client sees the connection close with no
            // answer, as after a reset. `resume_unwind` skips the panic hook, so nothing is printed.
            std::panic::resume_unwind(Box::new("fake fly: connection reset"))
        }
        Some(Fault::LostResponse(status)) => {
            let _committed = dispatch(&shared, &route, &query, &body).await;
            respond(reply_for(&Fault::Status(status)))
        }
        Some(fault) => respond(reply_for(&fault)),
    }
}

async fn dispatch(shared: &Shared, route: &Route, query: &[(String, String)], body: &Value) -> Reply {
    if route.op == Op::MachineWait {
        return wait(shared, route, query).await;
    }
    let (app, id) = ids(route);
    let flag = |key: &str| query.iter().any(|(k, v)| k == key && v == "true");
    let result = {
        let mut w = lock(&shared.world);
        match route.op {
            Op::AppCreate => w.create_app(body),
            Op::AppList => Ok(w.list_apps()),
            Op::AppGet => w.get_app(app),
            Op::AppDelete => w.delete_app(app),
            Op::IpList => w.list_ips(app),
            Op::IpAssign => w.assign_ip(app, body),
            Op::IpRelease => w.release_ip(app, id),
            Op::SecretsList => w.list_secrets(app, flag("show_secrets")),
            Op::SecretsSet => w.set_secrets(app, body),
            Op::SecretSet => w.set_secret(app, id, body),
            Op::SecretDelete => w.delete_secret(app, id),
            Op::VolumeCreate => w.create_volume(app, body),
            Op::VolumeList => w.list_volumes(app),
            Op::VolumeGet => w.get_volume(app, id),
            Op::VolumeDelete => w.delete_volume(app, id),
            Op::MachineCreate => w.create_machine(app, body),
            Op::MachineList => w.list_machines(app, query),
            Op::MachineGet => w.machine_mut(app, id).map(|m| Reply::json(200, super::machines::machine_json(m))),
            Op::MachineUpdate => w.update_machine(app, id, body),
            Op::MachineDelete => w.delete_machine(app, id, flag("force")),
            Op::MachineStart => w.start_machine(app, id),
            Op::MachineStop => w.stop_machine(app, id),
            Op::MachineSuspend => w.suspend_machine(app, id),
            Op::MachineWait => unreachable!("handled above"),
        }
    };
    shared.changed();
    result.unwrap_or_else(|e| e)
}

/// `GET …/wait?state=…&timeout=N`: blocks until the machine is in one of the states, or answers
/// 408 after `timeout` seconds (at most 60, and at most the fake's `max_wait`).
async fn wait(shared: &Shared, route: &Route, query: &[(String, String)]) -> Reply {
    let (app, id) = ids(route);
    let mut wanted: Vec<String> =
        query.iter().filter(|(k, _)| k == "state").flat_map(|(_, v)| v.split(',').map(str::to_string)).collect();
    if wanted.is_empty() {
        // fly-go waits for `started` when given no state; research names no server default.
        wanted.push("started".to_string());
    }
    let secs = query.iter().find(|(k, _)| k == "timeout").and_then(|(_, v)| v.parse::<u64>().ok()).unwrap_or(60);
    let limit = Duration::from_secs(secs.clamp(1, 60)).min(shared.options.max_wait);
    let deadline = tokio::time::Instant::now() + limit;
    let mut changes = shared.changes.subscribe();
    let mut first = true;
    loop {
        let current = {
            let mut w = lock(&shared.world);
            // Only the first look counts as a GET for eventual consistency.
            let machine = if first {
                w.machine_mut(app, id)
            } else {
                w.apps
                    .get_mut(app)
                    .and_then(|a| a.machines.get_mut(id))
                    .ok_or_else(|| Reply::error(404, "machine not found"))
            };
            let m = match machine {
                Ok(m) => m,
                Err(reply) => return reply,
            };
            if reached(&m.state, &wanted) {
                let event = w.tick();
                let m = &w.apps[app].machines[id];
                return Reply::json(
                    200,
                    json!({"ok": true, "state": m.state, "version": m.instance_id, "event_id": event.to_string()}),
                );
            }
            m.state.clone()
        };
        first = false;
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return Reply::error(503, "fake fly: shutting down"),
            Err(_) => {
                // The live API's message (research §2.5, machinesWait patch).
                let wanted = wanted.join(",");
                return Reply::error(
                    408,
                    format!("deadline_exceeded: machine failed to reach desired state, {wanted}, currently {current}"),
                );
            }
        }
    }
}

fn respond(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder().status(status).header("fly-request-id", super::world::rand_hex(20));
    if let Some(after) = &reply.retry_after {
        builder = builder.header(header::RETRY_AFTER, after);
    }
    let body = match (reply.raw, reply.body) {
        (Some(raw), _) => Body::from(raw),
        (None, Some(json)) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        (None, None) => Body::empty(),
    };
    builder.body(body).unwrap_or_else(|_| Response::new(Body::empty()))
}
