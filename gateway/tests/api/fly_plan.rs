//! The agent's spec follows the user's plan: its machine size and whether an idle agent is
//! suspended, read again at each start and reconciler round, so a plan change reaches it.

use gateway::db::subscriptions::{self, SubscriptionRow};
use gateway::domain::UserId;

use crate::helpers::TestApp;

const PLANS: &str = r#"
[free]
name = "Free"
monthly_credits = 10

[plans.price_small]
name = "Small"
monthly_credits = 10
machine_size = "shared-cpu-1x:1024"
suspend = true

[plans.price_big]
name = "Big"
monthly_credits = 10
machine_size = "performance-2x:4096"

[models.m]
input_per_million = 1
output_per_million = 2
"#;

async fn subscribe(app: &TestApp, user: &str, price: &str) {
    let row = SubscriptionRow {
        id: "sub_plan_test".into(),
        user_id: user.into(),
        customer: "cus_plan_test".into(),
        status: "active".into(),
        price_id: price.into(),
        plan: price.into(),
        period_start: None,
        period_end: None,
        cancel_at_period_end: false,
        cancel_at: None,
        ended_at: None,
        past_due_since: None,
        prior_price_id: None,
        prior_until: None,
    };
    subscriptions::upsert(&app.state.db.conn().unwrap(), &row, 1).await.unwrap();
}

fn size(spec: &provisioner::AgentSpec) -> Option<(String, u32, u32)> {
    spec.guest.as_ref().map(|g| (g.cpu_kind.clone(), g.cpus, g.memory_mb))
}

#[tokio::test]
async fn fly_the_agent_spec_carries_the_users_plan_size_and_suspend_and_follows_a_plan_change() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans.toml");
    std::fs::write(&plans, PLANS).unwrap();
    let app = TestApp::spawn_with(&["--plans", plans.to_str().unwrap(), "--llm-model", "m"]).await;
    let (_, id) = app.signed_up_cookie("plan-size@example.com").await;
    let user = UserId::parse(&id).unwrap();
    let (_, other_id) = app.signed_up_cookie("plan-size-other@example.com").await;
    let other = UserId::parse(&other_id).unwrap();

    let spec = app.state.machines.spec_for(&user).await.expect("a spec");
    assert_eq!((size(&spec), spec.suspend), (None, Some(false)), "the free plan leaves the size to the flag");

    subscribe(&app, &id, "price_small").await;
    let spec = app.state.machines.spec_for(&user).await.expect("a spec");
    assert_eq!((size(&spec), spec.suspend), (Some(("shared".into(), 1, 1024)), Some(true)));

    subscribe(&app, &id, "price_big").await;
    let spec = app.state.machines.spec_for(&user).await.expect("a spec");
    assert_eq!((size(&spec), spec.suspend), (Some(("performance".into(), 2, 4096)), Some(false)), "an upgrade");

    let theirs = app.state.machines.spec_for(&other).await.expect("a spec");
    assert_eq!((size(&theirs), theirs.suspend), (None, Some(false)), "another user's plan is their own");
}
