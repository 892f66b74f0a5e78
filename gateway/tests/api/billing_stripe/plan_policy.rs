//! A plan sets its agent's idle timeout (`idle_timeout` in --plans), over the server's flag.

use gateway::domain::{UserId, now_secs};

use super::{Billing, PRO};
use crate::helpers::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_sets_the_idle_timeout_of_its_agents() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(super::plans_file()).unwrap();
    // Pro agents stop after a second idle; free ones never (the server's flag says never too).
    let plans = example.replacen("idle_timeout = \"15m\"", "idle_timeout = \"0\"", 1).replacen(
        "idle_timeout = \"2h\"",
        "idle_timeout = \"1s\"",
        1,
    );
    assert_ne!(plans, example);
    let path = dir.path().join("plans.toml");
    std::fs::write(&path, plans).unwrap();
    let path = path.to_str().unwrap();
    let billing =
        Billing::start_with(now_secs(), &["--no-prewarm", "--agent-idle-timeout", "0", "--plans", path]).await;
    let (free_cookie, free_user) = billing.user("free-idler@example.com").await;
    let (cookie, user) = billing.user("pro-idler@example.com").await;
    let (_, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&events).await;

    let mut free_ws = billing.app.ws(&free_cookie, "").await;
    free_ws.ready().await;
    let mut ws = billing.app.ws(&cookie, "").await;
    ws.ready().await;
    drop(free_ws);
    drop(ws);
    let machines = &billing.app.state.machines;
    wait_until("the Pro agent stops for idleness", || async {
        machines.address_if_ready(&UserId::parse(&user).unwrap()).await.is_none()
    })
    .await;
    // Idle just as long (from before the Pro one), the free agent runs on.
    assert!(machines.address_if_ready(&UserId::parse(&free_user).unwrap()).await.is_some());
    wait_until("the stop is recorded with its reason", || async {
        let reason = billing
            .app
            .sql(&format!("SELECT reason FROM machine_events WHERE user_id = '{user}' AND stage = 'stopped'"))
            .await;
        format!("{reason:?}").contains("after 1 s idle")
    })
    .await;
}
