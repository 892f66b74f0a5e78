//! `GET /api/machine`'s `history`: the state changes of the user's own machine, newest first.

use serde_json::Value;

use crate::helpers::{TestApp, wait_until};

/// `(state, stage, reason)` of each event, newest first.
async fn history(app: &TestApp, cookie: &str) -> Vec<(String, String, String)> {
    let machine: Value = app.json_as(cookie, "/api/machine").await;
    let text = |event: &Value, key: &str| event[key].as_str().unwrap_or_default().to_string();
    machine["history"]
        .as_array()
        .expect("a history list")
        .iter()
        .map(|e| (text(e, "state"), text(e, "stage"), text(e, "reason")))
        .collect()
}

fn events(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_a_stop_and_a_restart_are_listed_newest_first_for_their_owner_only() {
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    let (cookie, _) = app.signed_up_cookie("history@example.com").await;
    let (other, _) = app.signed_up_cookie("neighbour@example.com").await;
    assert_eq!(history(&app, &cookie).await, [], "nothing happened yet");

    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    drop(ws);
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/machine/stop", None).await;
    assert_eq!(res.status(), 204);
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/machine/restart", None).await;
    assert_eq!(res.status(), 202);

    // One event for each start (its stages are one change), its ready, and each stop.
    let start = ("provisioning", "preparing_state", "preparing the simulated agent");
    let ready = ("ready", "ready", "the agent is ready");
    let expected = events(&[
        ready,
        start,
        ("idle_stopped", "stopped", "restarting at your request"),
        ("idle_stopped", "stopped", "stopped by you"),
        ready,
        start,
    ]);
    wait_until("the restart is in the history", || async { history(&app, &cookie).await.len() >= expected.len() })
        .await;
    assert_eq!(history(&app, &cookie).await, expected);
    let machine: Value = app.json_as(&cookie, "/api/machine").await;
    let times: Vec<i64> = machine["history"].as_array().unwrap().iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    assert_eq!(history(&app, &other).await, [], "another user's history is not shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_listed_with_its_reason_and_the_api_shows_at_most_twenty() {
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    let (cookie, user_id) = app.signed_up_cookie("failing@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    let reason = "your agent crashed 3 times in 90 seconds (last: exit code 1); it was stopped";
    app.state.machines.simulated().unwrap().fail(&user_id, reason).await;
    wait_until("the failure is in the history", || async {
        history(&app, &cookie).await.first().is_some_and(|e| e.0 == "failed")
    })
    .await;
    assert_eq!(history(&app, &cookie).await[0], ("failed".into(), "failed".into(), reason.into()));

    // Every stop is an event, even repeated: more than the API shows.
    for _ in 0..25 {
        let res = app.send_as(&cookie, reqwest::Method::POST, "/api/machine/stop", None).await;
        assert_eq!(res.status(), 204);
    }
    wait_until("the stops are written", || async {
        crate::account_deletion::rows_of(&app, "machine_events", &user_id).await >= 28
    })
    .await;
    let shown = history(&app, &cookie).await;
    assert_eq!(shown.len(), 20);
    assert!(shown.iter().all(|e| e.2 == "stopped by you"), "the newest are shown: {shown:?}");
}
