//! The Machines API client (`provisioner::fly`) against the fake Machines API (`fakes::fly`):
//! typed errors, retry classification, lost creates, `/wait`, eventual consistency, and that the
//! token never shows in an error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fakes::fly::{FakeFly, FakeFlyOptions, Fault, Op};
use provisioner::fly::{
    ApiToken, CreateAppRequest, CreateMachineRequest, CreateVolumeRequest, FlyClient, FlyConfig, FlyError,
    MachineConfig, MachineFilter, Mount, RetryPolicy, StopRequest, Timeouts, TransportKind, WaitOptions, WaitState,
    names,
};

const APP: &str = "roost-test-app";

/// Whether an error is the one a fault should give.
type IsExpected = fn(&FlyError) -> bool;

/// A retry policy that records the pauses it asks for instead of sleeping through them.
fn recording_policy(max_attempts: u32) -> (RetryPolicy, Arc<Mutex<Vec<Duration>>>) {
    let slept = Arc::new(Mutex::new(Vec::new()));
    let log = slept.clone();
    let policy = RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        max_total: Duration::from_secs(30),
        sleep: Arc::new(move |d| {
            log.lock().unwrap().push(d);
            Box::pin(async {})
        }),
    };
    (policy, slept)
}

fn client_with(fake: &FakeFly, token: &str, retry: RetryPolicy) -> FlyClient {
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        call: Duration::from_millis(1_500),
        create: Duration::from_millis(1_500),
        wait_slack: Duration::from_secs(2),
    };
    let config = FlyConfig { base_url: fake.base_url(), token: ApiToken::new(token), timeouts, retry };
    FlyClient::new(config).expect("a valid token")
}

fn client(fake: &FakeFly, retry: RetryPolicy) -> FlyClient {
    client_with(fake, fake.token(), retry)
}

async fn fake() -> FakeFly {
    FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(5)), ..Default::default() }).await
}

async fn create_app(fly: &FlyClient, fake: &FakeFly) {
    let request = CreateAppRequest { name: APP.into(), org_slug: fake.org_slug().into(), network: Some(APP.into()) };
    fly.create_app(&request).await.expect("app created");
}

fn machine_request(provision_id: &str, volume: Option<&str>) -> CreateMachineRequest {
    let mounts = volume.map(|v| vec![Mount { volume: v.into(), path: "/data".into() }]).unwrap_or_default();
    CreateMachineRequest {
        name: Some("openclaw".into()),
        region: Some("iad".into()),
        config: MachineConfig {
            image: "ghcr.io/example/openclaw@sha256:00".into(),
            mounts,
            metadata: names::machine_metadata("usr_1", provision_id),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn by_provision_id(id: &str) -> MachineFilter {
    MachineFilter {
        metadata: BTreeMap::from([(names::PROVISION_ID.to_string(), id.to_string())]),
        ..Default::default()
    }
}

#[tokio::test]
async fn fly_errors_are_typed_by_status() {
    let fake = fake().await;
    let fly = client(&fake, RetryPolicy::none());
    create_app(&fly, &fake).await;

    assert!(matches!(fly.get_app("missing-app").await, Err(FlyError::NotFound(_))));
    let cases: Vec<(Fault, IsExpected)> = vec![
        (Fault::Status(400), |e| matches!(e, FlyError::BadRequest(_))),
        (Fault::Status(403), |e| matches!(e, FlyError::Forbidden(_))),
        (Fault::Status(408), |e| matches!(e, FlyError::Timeout(_))),
        (Fault::Status(409), |e| matches!(e, FlyError::Conflict(_)) && e.is_capacity()),
        (Fault::VolumeInUse, |e| matches!(e, FlyError::PreconditionFailed(_)) && !e.is_capacity()),
        (Fault::VolumeHostFull, |e| matches!(e, FlyError::PreconditionFailed(_)) && e.is_capacity()),
        (Fault::Capacity { region: "iad".into() }, |e| matches!(e, FlyError::Unprocessable(_)) && e.is_capacity()),
        (
            Fault::RateLimited { retry_after: Some("7".into()) },
            |e| matches!(e, FlyError::RateLimited { retry_after: Some(d), .. } if *d == Duration::from_secs(7)),
        ),
        (Fault::RateLimited { retry_after: None }, |e| matches!(e, FlyError::RateLimited { retry_after: None, .. })),
        (Fault::Status(500), |e| matches!(e, FlyError::Server(_))),
        (Fault::Status(502), |e| matches!(e, FlyError::Server(_))),
        (Fault::Status(503), |e| matches!(e, FlyError::Server(_))),
    ];
    for (fault, expected) in cases {
        fake.fail(Op::AppGet, fault.clone());
        let error = fly.get_app(APP).await.expect_err("the fault answers");
        assert!(expected(&error), "{fault:?} gave {error:?}");
        let api = error.api().expect("an API error");
        assert!(api.request_id.is_some(), "fly-request-id kept: {api:?}");
        assert_eq!(api.call, format!("GET /v1/apps/{APP}"));
    }

    let again = CreateAppRequest { name: APP.into(), org_slug: fake.org_slug().into(), network: None };
    let taken = fly.create_app(&again).await.expect_err("the name is ours already");
    assert!(matches!(taken, FlyError::Unprocessable(_)) && taken.is_name_taken(), "{taken:?}");

    let stranger = client_with(&fake, "not-the-token", RetryPolicy::none());
    assert!(matches!(stranger.get_app(APP).await, Err(FlyError::Unauthorized(_))));
}

#[tokio::test]
async fn fly_rate_limits_honour_retry_after_and_stop_at_the_bound() {
    let fake = fake().await;
    let (policy, slept) = recording_policy(3);
    let fly = client(&fake, policy.clone());
    create_app(&fly, &fake).await;

    for _ in 0..5 {
        fake.fail(Op::AppGet, Fault::RateLimited { retry_after: Some("2".into()) });
    }
    let error = fly.get_app(APP).await.expect_err("still limited after three attempts");
    assert!(matches!(error, FlyError::RateLimited { .. }), "{error:?}");
    assert_eq!(fake.calls(Op::AppGet), 3, "max_attempts bounds the attempts");
    let pauses = slept.lock().unwrap().clone();
    assert_eq!(pauses.len(), 2);
    assert!(pauses.iter().all(|d| *d >= Duration::from_secs(2)), "Retry-After honoured: {pauses:?}");

    // A Retry-After beyond the total budget ends the call at once, for the caller to reschedule.
    while fake.pending_faults() > 0 {
        let _ = fly.get_app(APP).await;
    }
    let before = fake.calls(Op::AppGet);
    fake.fail(Op::AppGet, Fault::RateLimited { retry_after: Some("3600".into()) });
    let error = fly.get_app(APP).await.expect_err("not worth waiting an hour");
    assert!(matches!(error, FlyError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3600)));
    assert_eq!(fake.calls(Op::AppGet), before + 1);

    // Fewer 429s than attempts: the call gets through.
    fake.fail(Op::AppGet, Fault::RateLimited { retry_after: Some("1".into()) });
    assert_eq!(fly.get_app(APP).await.expect("through on the second attempt").name, APP);
}

#[tokio::test]
async fn fly_idempotent_calls_retry_5xx_and_408_but_not_422_or_412() {
    let fake = fake().await;
    let (policy, _slept) = recording_policy(5);
    let fly = client(&fake, policy);
    create_app(&fly, &fake).await;
    let machine = fly.create_machine(APP, &machine_request("p1", None)).await.expect("created");

    for status in [500, 502, 503, 408] {
        fake.fail(Op::MachineGet, Fault::Status(status));
    }
    assert_eq!(fly.get_machine(APP, &machine.id).await.expect("the fifth attempt").id, machine.id);
    assert_eq!(fake.calls(Op::MachineGet), 5);

    fake.fail(Op::MachineStop, Fault::Status(503));
    fly.stop_machine(APP, &machine.id, &StopRequest::default()).await.expect("stop retried");
    assert_eq!(fake.calls(Op::MachineStop), 2);

    fake.fail(Op::MachineStart, Fault::Capacity { region: "iad".into() });
    let error = fly.start_machine(APP, &machine.id).await.expect_err("422 is final");
    assert!(matches!(error, FlyError::Unprocessable(_)), "{error:?}");
    assert_eq!(fake.calls(Op::MachineStart), 1);

    fake.fail(Op::MachineSuspend, Fault::VolumeHostFull);
    let error = fly.suspend_machine(APP, &machine.id).await.expect_err("412 is final");
    assert!(matches!(error, FlyError::PreconditionFailed(_)), "{error:?}");
    assert_eq!(fake.calls(Op::MachineSuspend), 1);

    // A call that hangs past its timeout is a transport timeout, retried when idempotent.
    fake.fail(Op::MachineGet, Fault::Hang);
    fly.get_machine(APP, &machine.id).await.expect("retried after the hang");
    assert_eq!(fake.calls(Op::MachineGet), 7);
}

#[tokio::test]
async fn fly_a_create_whose_answer_was_lost_is_not_retried_and_is_found_by_metadata() {
    let fake = fake().await;
    let (policy, _slept) = recording_policy(5);
    let fly = client(&fake, policy);
    create_app(&fly, &fake).await;

    fake.fail(Op::MachineCreate, Fault::LostResponse(502));
    let error = fly.create_machine(APP, &machine_request("p1", None)).await.expect_err("the answer was lost");
    assert!(matches!(error, FlyError::Server(_)), "{error:?}");
    assert_eq!(fake.calls(Op::MachineCreate), 1, "a create is never retried by the client");
    let found = fly.list_machines(APP, &by_provision_id("p1")).await.expect("listed");
    assert_eq!(found.len(), 1, "the machine exists all the same");
    assert_eq!(found[0].metadata(names::USER_ID), Some("usr_1"));
    assert!(fly.list_machines(APP, &by_provision_id("p2")).await.unwrap().is_empty(), "the filter filters");

    // A 408 on create is just as ambiguous; a hang is a timeout, never retried either.
    fake.fail(Op::MachineCreate, Fault::LostResponse(408));
    let mut second = machine_request("p2", None);
    second.name = Some("second".into());
    assert!(matches!(fly.create_machine(APP, &second).await, Err(FlyError::Timeout(_))));
    fake.fail(Op::MachineCreate, Fault::Hang);
    let mut third = machine_request("p3", None);
    third.name = Some("third".into());
    let error = fly.create_machine(APP, &third).await.expect_err("hung");
    assert!(matches!(error, FlyError::Transport { kind: TransportKind::Timeout, .. }), "{error:?}");
    assert_eq!(fake.calls(Op::MachineCreate), 3);
    assert_eq!(fly.list_machines(APP, &by_provision_id("p2")).await.unwrap().len(), 1);
    assert!(fly.list_machines(APP, &by_provision_id("p3")).await.unwrap().is_empty(), "the hang was before commit");

    // Volumes and apps: not retried either.
    fake.fail(Op::VolumeCreate, Fault::Status(503));
    let volume = CreateVolumeRequest { name: "data".into(), region: "iad".into(), size_gb: 1, ..Default::default() };
    assert!(matches!(fly.create_volume(APP, &volume).await, Err(FlyError::Server(_))));
    assert_eq!(fake.calls(Op::VolumeCreate), 1);
}

#[tokio::test]
async fn fly_wait_returns_at_the_state_and_times_out_typed_otherwise() {
    let fake = FakeFly::spawn(FakeFlyOptions {
        transition_step: Some(Duration::from_millis(5)),
        max_wait: Duration::from_millis(40),
        ..Default::default()
    })
    .await;
    let (policy, _slept) = recording_policy(4);
    let fly = client(&fake, policy);
    create_app(&fly, &fake).await;
    let machine = fly.create_machine(APP, &machine_request("p1", None)).await.expect("created");
    assert_eq!(machine.state, "created");

    let long = WaitOptions::within(Duration::from_secs(20));
    let started = fly.wait_for_state(APP, &machine.id, WaitState::Started, &long).await.expect("started");
    assert_eq!(started.state, "started");
    assert_eq!(fly.get_machine(APP, &machine.id).await.unwrap().state, "started");

    fake.hold_transitions(true);
    fly.stop_machine(APP, &machine.id, &StopRequest::default()).await.expect("stop accepted");
    let short =
        WaitOptions { version: Some(machine.instance_id.clone()), ..WaitOptions::within(Duration::from_millis(200)) };
    let error = fly.wait_for_state(APP, &machine.id, WaitState::Stopped, &short).await.expect_err("held in stopping");
    assert!(matches!(&error, FlyError::WaitTimedOut { wanted, .. } if wanted == "stopped"), "{error:?}");
    assert!(fake.calls(Op::MachineWait) >= 3, "408s were followed by further waits");
    let asked = fake.requests().into_iter().rev().find(|r| r.op == Some(Op::MachineWait)).unwrap();
    assert!(asked.query.contains(&("version".into(), machine.instance_id.clone())), "{:?}", asked.query);

    fake.hold_transitions(false);
    let stopped = fly.wait_for_state(APP, &machine.id, WaitState::Stopped, &long).await.expect("stopped");
    assert_eq!(stopped.state, "stopped");
}

#[tokio::test]
async fn fly_not_found_right_after_create_is_survived_where_research_says_so() {
    let fake = FakeFly::spawn(FakeFlyOptions {
        transition_step: Some(Duration::from_millis(5)),
        not_found_after_create: 2,
        list_lag: 1,
        ..Default::default()
    })
    .await;
    let (policy, _slept) = recording_policy(4);
    let fly = client(&fake, policy);
    create_app(&fly, &fake).await;
    assert!(matches!(fly.get_app(APP).await, Err(FlyError::NotFound(_))), "a plain GET does not retry 404");
    assert_eq!(fly.wait_for_app(APP).await.expect("visible after a retry").name, APP);

    let machine = fly.create_machine(APP, &machine_request("p1", None)).await.expect("created");
    assert_eq!(fly.get_machine_after_create(APP, &machine.id).await.expect("retried past two 404s").id, machine.id);
    assert_eq!(fake.calls(Op::MachineGet), 3);

    assert!(fly.list_machines(APP, &by_provision_id("p1")).await.unwrap().is_empty(), "the list lags");
    assert_eq!(fly.list_machines(APP, &by_provision_id("p1")).await.unwrap().len(), 1, "then catches up");

    let second = CreateMachineRequest { name: Some("b".into()), ..machine_request("p2", None) };
    let second = fly.create_machine(APP, &second).await.expect("created");
    let just_created = WaitOptions { just_created: true, ..WaitOptions::within(Duration::from_secs(20)) };
    let waited = fly.wait_for_state(APP, &second.id, WaitState::Started, &just_created).await;
    assert_eq!(waited.expect("404s on wait retried when just created").state, "started");

    let third = CreateMachineRequest { name: Some("c".into()), ..machine_request("p3", None) };
    let third = fly.create_machine(APP, &third).await.expect("created");
    let later = WaitOptions::within(Duration::from_secs(20));
    let error = fly.wait_for_state(APP, &third.id, WaitState::Started, &later).await.expect_err("404 is final");
    assert!(error.is_not_found(), "{error:?}");
}

#[tokio::test]
async fn fly_the_token_never_shows_in_errors() {
    let fake = fake().await;
    let token = fake.token().to_string();
    let fly = client(&fake, RetryPolicy::none());
    assert!(!format!("{fly:?}").contains(&token), "client Debug");

    let echoed = format!("{{\"error\":\"token {token} is not valid here\"}}");
    fake.fail_next(Fault::Raw { status: 401, body: echoed });
    let error = fly.get_app(APP).await.expect_err("refused");
    assert!(matches!(error, FlyError::Unauthorized(_)), "{error:?}");
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(&token), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    fake.fail_next(Fault::Hang);
    let quick = Timeouts { call: Duration::from_millis(100), ..Timeouts::default() };
    let config =
        FlyConfig { timeouts: quick, retry: RetryPolicy::none(), ..FlyConfig::new(ApiToken::new(token.clone())) };
    let hasty = FlyClient::new(FlyConfig { base_url: fake.base_url(), ..config }).unwrap();
    let error = hasty.get_app(APP).await.expect_err("timed out");
    assert!(matches!(error, FlyError::Transport { kind: TransportKind::Timeout, .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains(&token));

    let unreachable =
        FlyConfig { base_url: "http://127.0.0.1:1".into(), ..FlyConfig::new(ApiToken::new(token.clone())) };
    let nowhere = FlyClient::new(FlyConfig { retry: RetryPolicy::none(), ..unreachable }).unwrap();
    let error = nowhere.get_app(APP).await.expect_err("nothing listens");
    assert!(matches!(error, FlyError::Transport { kind: TransportKind::Connect, .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains(&token));
}

#[tokio::test]
async fn fly_resources_behave_as_the_research_documents() {
    let fake = fake().await;
    let (policy, _slept) = recording_policy(3);
    let fly = client(&fake, policy);
    create_app(&fly, &fake).await;
    let app = fly.wait_for_app(APP).await.unwrap();
    assert_eq!((app.status.as_str(), app.network.as_str()), ("pending", APP));

    // Secrets: versioned, values never listed.
    let values = BTreeMap::from([("A".to_string(), Some("x".to_string())), ("B".to_string(), Some("y".to_string()))]);
    let set = fly.set_secrets(APP, &values).await.unwrap();
    assert_eq!((set.secrets.len(), set.version), (2, 1));
    let set = fly.set_secrets(APP, &BTreeMap::from([("B".to_string(), None)])).await.unwrap();
    assert_eq!(set.version, 2);
    let listed = fly.list_secrets(APP).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["A"]);
    assert!(listed[0].value.is_none() && !format!("{listed:?}").contains('x'));

    // Flycast: the default network is "" here, never "default" (pitfall 14).
    let flycast = provisioner::fly::AssignIpRequest {
        kind: provisioner::fly::IpType::PrivateV6,
        network: "default".into(),
        org_slug: fake.org_slug().into(),
        region: String::new(),
        service_name: String::new(),
    };
    assert!(matches!(fly.assign_ip(APP, &flycast).await, Err(FlyError::BadRequest(_))));
    let ip = fly.assign_ip(APP, &provisioner::fly::AssignIpRequest { network: APP.into(), ..flycast }).await.unwrap();
    assert!(ip.ip.starts_with("fdaa:") && ip.network.unwrap().name == APP);
    assert_eq!(fly.list_ips(APP).await.unwrap().len(), 1);

    // Volumes: capacity per region, forks, attachment.
    let request = CreateVolumeRequest { name: "data".into(), region: "ord".into(), size_gb: 1, ..Default::default() };
    fake.set_region_full("ord", true);
    assert!(fly.create_volume(APP, &request).await.unwrap_err().is_capacity());
    let volume =
        fly.create_volume(APP, &CreateVolumeRequest { region: "iad".into(), ..request.clone() }).await.unwrap();
    let fork =
        fly.fork_volume(APP, &volume.id, &CreateVolumeRequest { region: "iad".into(), ..request }).await.unwrap();
    assert_eq!(fork.state, "hydrating");
    assert_eq!(fly.list_volumes(APP).await.unwrap().len(), 2);

    let mut elsewhere = machine_request("p1", Some(&volume.id));
    elsewhere.region = Some("ams".into());
    assert!(matches!(fly.create_machine(APP, &elsewhere).await, Err(FlyError::PreconditionFailed(_))));
    let mut stale = machine_request("p1", Some("vol_gone"));
    stale.region = None;
    assert!(matches!(fly.create_machine(APP, &stale).await, Err(FlyError::BadRequest(_))));
    let mut ahead = machine_request("p1", Some(&volume.id));
    ahead.min_secrets_version = Some(3);
    assert!(matches!(fly.create_machine(APP, &ahead).await, Err(FlyError::PreconditionFailed(_))));
    let machine = fly.create_machine(APP, &machine_request("p1", Some(&volume.id))).await.unwrap();
    assert!(matches!(fly.create_machine(APP, &machine_request("p2", None)).await, Err(FlyError::Conflict(_))));
    assert_eq!(
        fly.get_volume(APP, &volume.id).await.unwrap().attached_machine_id.as_deref(),
        Some(machine.id.as_str())
    );
    assert!(matches!(fly.delete_volume(APP, &volume.id).await, Err(FlyError::PreconditionFailed(_))));

    // Machines: start/stop/suspend through the states; delete needs force while running.
    let within = WaitOptions::within(Duration::from_secs(20));
    fly.wait_for_state(APP, &machine.id, WaitState::Started, &within).await.unwrap();
    fly.suspend_machine(APP, &machine.id).await.unwrap();
    fly.wait_for_state(APP, &machine.id, WaitState::Suspended, &within).await.unwrap();
    assert_eq!(fly.start_machine(APP, &machine.id).await.unwrap().previous_state, "suspended");
    fly.wait_for_state(APP, &machine.id, WaitState::Started, &within).await.unwrap();
    assert!(matches!(fly.delete_machine(APP, &machine.id, false).await, Err(FlyError::Conflict(_))));
    assert!(fly.delete_machine(APP, &machine.id, true).await.unwrap());
    fly.wait_for_state(APP, &machine.id, WaitState::Destroyed, &within).await.unwrap();
    assert!(fly.list_machines(APP, &MachineFilter::default()).await.unwrap().is_empty());
    let with_deleted = MachineFilter { include_deleted: true, ..Default::default() };
    assert_eq!(fly.list_machines(APP, &with_deleted).await.unwrap().len(), 1);
    assert!(fly.delete_volume(APP, &volume.id).await.unwrap(), "detached once destroyed");
    assert!(!fly.delete_volume(APP, &volume.id).await.unwrap(), "a second delete finds it gone");

    // Deleting the app cascades; a repeat is done, not an error.
    assert!(fly.delete_app(APP).await.unwrap());
    assert!(fake.volumes(APP).is_empty() && fake.machines(APP).is_empty());
    assert!(!fly.delete_app(APP).await.unwrap());

    // Another customer's name: create says taken, GET 403.
    fake.add_foreign_app("someone-elses");
    let theirs = CreateAppRequest { name: "someone-elses".into(), org_slug: fake.org_slug().into(), network: None };
    assert!(fly.create_app(&theirs).await.unwrap_err().is_name_taken());
    assert!(matches!(fly.get_app("someone-elses").await, Err(FlyError::Forbidden(_))));
}

#[tokio::test]
async fn fly_fake_keeps_a_bounded_number_of_objects() {
    let fake = FakeFly::spawn(FakeFlyOptions { max_objects: 3, ..Default::default() }).await;
    let fly = client(&fake, RetryPolicy::none());
    create_app(&fly, &fake).await;
    let volume = CreateVolumeRequest { name: "data".into(), region: "iad".into(), size_gb: 1, ..Default::default() };
    fly.create_volume(APP, &volume).await.unwrap();
    fly.create_volume(APP, &volume).await.unwrap();
    assert!(matches!(fly.create_volume(APP, &volume).await, Err(FlyError::Unprocessable(_))));
    assert_eq!(fake.object_count(), 3);
}

#[tokio::test]
async fn fly_list_apps_and_update_machine_send_the_documented_requests() {
    let fake = fake().await;
    let (retry, _) = recording_policy(4);
    let fly = client(&fake, retry);
    create_app(&fly, &fake).await;

    // `GET /v1/apps?org_slug=ORG` → `{"total_apps": n, "apps": [App…]}` (research §2.1).
    let apps = fly.list_apps(fake.org_slug()).await.expect("apps listed");
    assert_eq!(apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), [APP]);
    let list = fake.requests().into_iter().rfind(|r| r.op == Some(Op::AppList)).expect("a list request");
    assert_eq!((list.method.as_str(), list.path.as_str()), ("GET", "/v1/apps"));
    assert_eq!(list.query, [("org_slug".to_string(), fake.org_slug().to_string())]);

    let machine = fly.create_machine(APP, &machine_request("p1", None)).await.expect("machine created");
    fly.wait_for_state(APP, &machine.id, WaitState::Started, &WaitOptions::within(Duration::from_secs(5)))
        .await
        .expect("started");
    let current = fly.get_machine(APP, &machine.id).await.expect("read");
    let mut config = current.config.clone().expect("a config");
    config.image = "ghcr.io/example/openclaw@sha256:11".into();

    // `POST /v1/apps/{app}/machines/{id}` with the whole config and `current_version` (§2.5).
    let request = provisioner::fly::UpdateMachineRequest {
        config,
        current_version: Some(current.instance_id.clone()),
        skip_launch: false,
        min_secrets_version: None,
    };
    let updated = fly.update_machine(APP, &machine.id, &request).await.expect("updated");
    assert_ne!(updated.instance_id, current.instance_id, "every update is a new version");
    let sent = fake.requests().into_iter().rfind(|r| r.op == Some(Op::MachineUpdate)).expect("an update request");
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", format!("/v1/apps/{APP}/machines/{}", machine.id).as_str())
    );
    assert_eq!(sent.body["current_version"], current.instance_id.as_str());
    assert_eq!(sent.body["config"]["image"], "ghcr.io/example/openclaw@sha256:11");
    // The whole config went back: the metadata too, not only the changed field (pitfall 10).
    assert_eq!(sent.body["config"]["metadata"]["provision_id"], "p1");
    assert!(sent.body.get("skip_launch").is_none(), "false is left out");

    // A stale version is refused (412), and an update is not retried (it is not idempotent).
    let stale = fly.update_machine(APP, &machine.id, &request).await.expect_err("a stale version");
    assert!(matches!(stale, FlyError::PreconditionFailed(_)), "{stale:?}");
    fake.fail(Op::MachineUpdate, Fault::Status(503));
    let request = provisioner::fly::UpdateMachineRequest { current_version: None, ..request };
    let before = fake.calls(Op::MachineUpdate);
    assert!(matches!(fly.update_machine(APP, &machine.id, &request).await, Err(FlyError::Server(_))));
    assert_eq!(fake.calls(Op::MachineUpdate), before + 1, "sent once");
}
