//! The `fly` provider against the fake Machines API (`fakes::fly`), with a simulated OpenClaw
//! agent on 127.0.0.1 standing in for every machine (the agent address template points at it),
//! so readiness and the chat socket are real. Directly through `Provider` with an in-memory
//! store, and once through a real `TestApp` with `--agent-provider fly` and its database.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fakes::fly::{FakeFly, FakeFlyOptions, Fault, Op};
use gateway::machines::simulated::{Options as AgentOptions, SimulatedAgent};
use provisioner::fly::{
    CreateAppRequest, CreateMachineRequest, FlyOptions, FlyProvider, FlyRecord, FlyStore, MachineConfig,
    MemoryFlyStore, StoreError, StoredRecord, names,
};
use provisioner::{AgentSpec, LlmEndpoint, MachineState, Progress, Provider, ProvisionError, Stage};
use serde_json::Value;

use crate::fly_rig::{client_for, late_forwarder};
use crate::helpers::{TestApp, wait_until};

const USER: &str = "usr_fly_1";
const NAME_KEY: &[u8] = b"test name key";
const GATEWAY_TOKEN: &str = "gw-token-never-shown-0123456789";
const AGENT_SECRET: &str = "agent-secret-never-shown-0123456789abcdef";
const LLM_CREDENTIAL: &str = "rak_usr_fly_1.credential-never-shown";

/// Every stage reported, in order.
#[derive(Default)]
struct Stages(Mutex<Vec<(Stage, String)>>);

impl Progress for Stages {
    fn report(&self, _user_id: &str, stage: Stage, detail: &str) {
        self.0.lock().unwrap().push((stage, detail.to_string()));
    }
}

impl Stages {
    /// The stages with repeats in a row folded, as a page shows them.
    fn names(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for (stage, _) in self.0.lock().unwrap().iter() {
            if out.last() != Some(&stage.as_str()) {
                out.push(stage.as_str());
            }
        }
        out
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().iter().map(|(s, d)| format!("{}: {d}\n", s.as_str())).collect()
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A store that keeps every record saved, to see that each id is written as it arrives.
#[derive(Default)]
struct LoggingStore {
    inner: MemoryFlyStore,
    saves: Mutex<Vec<FlyRecord>>,
}

#[async_trait]
impl FlyStore for LoggingStore {
    async fn load(&self, user_id: &str) -> Result<Option<FlyRecord>, StoreError> {
        self.inner.load(user_id).await
    }
    async fn save(&self, user_id: &str, record: &FlyRecord) -> Result<(), StoreError> {
        self.saves.lock().unwrap().push(record.clone());
        self.inner.save(user_id, record).await
    }
    async fn clear(&self, user_id: &str) -> Result<(), StoreError> {
        self.inner.clear(user_id).await
    }
    async fn list(&self) -> Result<Vec<StoredRecord>, StoreError> {
        self.inner.list().await
    }
    async fn failed_rollout(&self, image: &str) -> Result<Option<String>, StoreError> {
        self.inner.failed_rollout(image).await
    }
    async fn fail_rollout(&self, image: &str, reason: &str) -> Result<(), StoreError> {
        self.inner.fail_rollout(image, reason).await
    }
}

struct Rig {
    fake: FakeFly,
    provider: FlyProvider,
    store: Arc<LoggingStore>,
    stages: Stages,
    /// How often the provider paused before re-listing (the injectable sleep).
    pauses: Arc<AtomicUsize>,
    _agent: SimulatedAgent,
}

fn spec() -> AgentSpec {
    AgentSpec {
        user_id: USER.into(),
        gateway_token: GATEWAY_TOKEN.into(),
        agent_secret: AGENT_SECRET.into(),
        llm: LlmEndpoint {
            base_url: "https://roost.example/llm/openai/v1".into(),
            api: "openai-completions",
            credential: LLM_CREDENTIAL.into(),
            model: "gpt-test".into(),
        },
        guest: None,
        suspend: None,
    }
}

async fn rig() -> Rig {
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(5)), ..Default::default() }).await;
    let agent =
        SimulatedAgent::spawn(AgentOptions { token: GATEWAY_TOKEN.into(), ..Default::default() }).await.unwrap();
    let pauses = Arc::new(AtomicUsize::new(0));
    let counted = pauses.clone();
    let mut options = FlyOptions::new(
        fake.org_slug().into(),
        vec!["iad".into(), "ord".into()],
        "img@sha256:00".into(),
        NAME_KEY.into(),
    );
    // Every machine is the simulated agent on loopback.
    options.agent_address = agent.ws_url();
    options.start_deadline = Duration::from_secs(20);
    options.stop_deadline = Duration::from_secs(20);
    options.ready_timeout = Duration::from_secs(20);
    options.sleep = Arc::new(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    });
    let store = Arc::new(LoggingStore::default());
    let provider = FlyProvider::new(client_for(&fake), options, store.clone());
    Rig { fake, provider, store, stages: Stages::default(), pauses, _agent: agent }
}

impl Rig {
    async fn record(&self) -> FlyRecord {
        self.store.load(USER).await.unwrap().expect("a record")
    }

    /// The app's machines that are not destroyed.
    fn live_machines(&self, app: &str) -> Vec<Value> {
        self.fake.machines(app).into_iter().filter(|m| m["state"] != "destroyed").collect()
    }

    async fn start(&self) -> provisioner::Machine {
        match self.provider.start(&spec(), &self.stages).await {
            Ok(machine) => machine,
            Err(e) => panic!("start failed: {e}\nstages:\n{}", self.stages.text()),
        }
    }
}

fn app_name(attempt: u32) -> String {
    names::app_name("roost", NAME_KEY, USER, attempt).unwrap()
}

#[tokio::test]
async fn fly_provision_reports_every_stage_in_order_and_persists_every_id() {
    let rig = rig().await;
    let machine = rig.start().await;

    assert_eq!(
        rig.stages.names(),
        ["creating_app", "creating_volume", "creating_machine", "starting", "waiting_ready", "ready"],
        "{}",
        rig.stages.text()
    );
    let record = rig.record().await;
    let app = record.app_name.clone().expect("app name kept");
    assert_eq!(app, app_name(0));
    let machines = rig.live_machines(&app);
    assert_eq!(machines.len(), 1);
    let fly_machine = &machines[0];
    assert_eq!(record.machine_id.as_deref(), fly_machine["id"].as_str());
    assert_eq!(machine.external_id, fly_machine["id"].as_str().unwrap());
    assert_eq!(fly_machine["config"]["metadata"]["provision_id"], record.provision_id.as_str());
    assert_eq!(fly_machine["config"]["metadata"]["user_id"], USER);
    let volumes = rig.fake.volumes(&app);
    assert_eq!(volumes.len(), 1);
    assert_eq!(record.volume_id.as_deref(), volumes[0]["id"].as_str());
    assert_eq!(fly_machine["config"]["mounts"][0]["volume"], volumes[0]["id"]);
    assert_eq!(record.region.as_deref(), Some("iad"));
    let (secrets, version) = rig.fake.secrets(&app);
    assert_eq!(secrets["OPENCLAW_GATEWAY_TOKEN"], GATEWAY_TOKEN);
    assert_eq!(secrets["ROOST_LLM_CREDENTIAL"], LLM_CREDENTIAL);
    assert_eq!(secrets["ROOST_AGENT_SECRET"], AGENT_SECRET);
    // The volume holds OpenClaw's state, where the image's sidecar points OpenClaw.
    assert_eq!(fly_machine["config"]["mounts"][0]["path"], "/data");
    assert_eq!(fly_machine["config"]["env"]["ROOST_AGENT_STATE_DIR"], "/data/openclaw");
    assert_eq!(
        fly_machine["config"]["env"]["ROOST_AGENT_TMP_DIR"], "/data/tmp",
        "Node's compile cache outlives a stop"
    );
    assert_eq!(record.secrets_version, Some(version));
    assert_eq!(rig.provider.status(USER).await, MachineState::Ready);
    assert_eq!(rig.provider.address(USER).await.as_deref(), Some(machine.address.as_str()));

    // The row came first, and each id was written as Fly returned it, in recipe order.
    let saves = rig.store.saves.lock().unwrap().clone();
    let first = &saves[0];
    assert!(first.app_name.is_none() && first.machine_id.is_none(), "the row before any Fly call: {first:?}");
    let step = |pred: &dyn Fn(&FlyRecord) -> bool| saves.iter().position(pred).expect("saved");
    let (named, secrets, volume, machine) = (
        step(&|r| r.app_name.is_some()),
        step(&|r| r.secrets_version.is_some()),
        step(&|r| r.volume_id.is_some() && r.region.is_some()),
        step(&|r| r.machine_id.is_some()),
    );
    assert!(named < secrets && secrets < volume && volume < machine, "{saves:#?}");
    assert!(saves.iter().all(|r| r.provision_id == first.provision_id), "one provision id throughout");
}

#[tokio::test]
async fn fly_a_lost_machine_create_is_found_by_its_provision_id() {
    let rig = rig().await;
    // Fly makes the machine, then the answer is lost: a 503 hiding a success (pitfall 9).
    rig.fake.fail(Op::MachineCreate, Fault::LostResponse(503));
    rig.start().await;

    let record = rig.record().await;
    let app = record.app_name.clone().unwrap();
    let machines = rig.live_machines(&app);
    assert_eq!(machines.len(), 1, "exactly one machine: {machines:#?}");
    assert_eq!(record.machine_id.as_deref(), machines[0]["id"].as_str());
    assert_eq!(rig.fake.calls(Op::MachineCreate), 1, "found by metadata, not created again");
    assert_eq!(rig.pauses.load(Ordering::SeqCst), 1, "one pause before the re-list");
    let lists = rig.fake.requests().into_iter().filter(|r| r.op == Some(Op::MachineList)).collect::<Vec<_>>();
    assert!(
        lists.iter().any(|r| r.query.iter().any(|(k, v)| k == "metadata.provision_id" && *v == record.provision_id)),
        "listed by the provision id: {lists:#?}"
    );
}

#[tokio::test]
async fn fly_a_region_without_room_moves_to_the_next() {
    let rig = rig().await;
    rig.fake.set_region_full("iad", true);
    rig.start().await;

    let record = rig.record().await;
    assert_eq!(record.region.as_deref(), Some("ord"));
    let app = record.app_name.clone().unwrap();
    let machines = rig.live_machines(&app);
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0]["region"], "ord");
    assert_eq!(rig.fake.volumes(&app)[0]["region"], "ord");
    assert!(rig.stages.text().contains("no room in iad; trying ord"), "{}", rig.stages.text());
}

#[tokio::test]
async fn fly_a_full_volume_host_forks_the_volume_and_makes_a_new_machine() {
    let rig = rig().await;
    rig.fake.fail(Op::MachineCreate, Fault::VolumeHostFull);
    rig.start().await;

    let record = rig.record().await;
    let app = record.app_name.clone().unwrap();
    let creates: Vec<Value> =
        rig.fake.requests().into_iter().filter(|r| r.op == Some(Op::VolumeCreate)).map(|r| r.body).collect();
    assert_eq!(creates.len(), 2, "the volume, then its fork");
    let volumes = rig.fake.volumes(&app);
    let first = volumes.iter().find(|v| v["id"] != record.volume_id.as_deref().unwrap()).expect("the first volume");
    assert_eq!(creates[1]["source_volume_id"], first["id"], "a fork of the first volume keeps the data");
    let machines = rig.live_machines(&app);
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0]["config"]["mounts"][0]["volume"], record.volume_id.as_deref().unwrap());
    assert_eq!(rig.fake.calls(Op::MachineCreate), 2);
    assert!(rig.stages.text().contains("host is full"), "{}", rig.stages.text());
}

#[tokio::test]
async fn fly_stop_then_wake_reaches_ready_again() {
    let rig = rig().await;
    rig.start().await;
    let record = rig.record().await;
    let (app, id) = (record.app_name.clone().unwrap(), record.machine_id.clone().unwrap());

    rig.provider.stop(USER).await.expect("stopped");
    assert_eq!(rig.live_machines(&app)[0]["state"], "stopped");
    assert_eq!(rig.provider.status(USER).await, MachineState::IdleStopped);
    assert_eq!(rig.provider.address(USER).await, None);

    rig.stages.clear();
    let woken = rig.start().await;
    assert_eq!(woken.external_id, id, "the same machine");
    assert_eq!(rig.stages.names(), ["starting", "waiting_ready", "ready"], "{}", rig.stages.text());
    assert!(rig.stages.text().contains("waking"), "{}", rig.stages.text());
    assert_eq!(rig.live_machines(&app)[0]["state"], "started");
    assert_eq!(rig.fake.calls(Op::MachineCreate), 1);
    assert_eq!(rig.fake.calls(Op::MachineStart), 1);
    assert_eq!(rig.provider.status(USER).await, MachineState::Ready);
}

#[tokio::test]
async fn fly_a_stop_during_a_start_ends_the_start_and_leaves_the_machine_stopped() {
    let rig = rig().await;
    // The machine stays `created` (launching), so the start waits in `/wait` for `started`.
    rig.fake.hold_transitions(true);
    let spec = spec();
    let start = rig.provider.start(&spec, &rig.stages);
    let stop = async {
        wait_until("the machine exists", || async {
            rig.store.load(USER).await.unwrap().and_then(|r| r.machine_id).is_some()
        })
        .await;
        rig.provider.stop(USER).await
    };
    let (started, stopped) = tokio::join!(start, stop);
    assert!(matches!(started, Err(ProvisionError::Exited(_))), "{started:?}");
    stopped.expect("stopped");
    let app = rig.record().await.app_name.unwrap();
    assert_eq!(rig.live_machines(&app)[0]["state"], "stopped");
    assert_eq!(rig.provider.status(USER).await, MachineState::IdleStopped);

    // The next start wakes that machine.
    rig.fake.hold_transitions(false);
    rig.start().await;
    assert_eq!(rig.fake.calls(Op::MachineCreate), 1);
    assert_eq!(rig.provider.status(USER).await, MachineState::Ready);
}

#[tokio::test]
async fn fly_destroy_deletes_the_app_and_a_second_destroy_is_fine() {
    let rig = rig().await;
    rig.start().await;
    let record = rig.record().await;
    rig.provider.destroy(USER).await.expect("destroyed");
    assert!(rig.fake.app_names().is_empty(), "the app (and with it machine and volume) is gone");
    assert!(rig.store.load(USER).await.unwrap().is_none(), "the record is cleared");
    assert_eq!(rig.provider.status(USER).await, MachineState::IdleStopped);

    // A crash between the delete and clearing the record: the next destroy meets a 404.
    rig.store.save(USER, &record).await.unwrap();
    rig.provider.destroy(USER).await.expect("a 404 counts as done");
    assert!(rig.store.load(USER).await.unwrap().is_none());
    assert_eq!(rig.fake.calls(Op::AppDelete), 2);
}

#[tokio::test]
async fn fly_an_app_name_held_by_another_customer_moves_to_a_new_name() {
    let rig = rig().await;
    rig.fake.add_foreign_app(&app_name(0));
    rig.start().await;
    let record = rig.record().await;
    assert_eq!(record.app_name, Some(app_name(1)));
    assert_eq!(rig.fake.app_names(), [app_name(1)]);
}

#[tokio::test]
async fn fly_an_app_of_ours_with_another_users_machine_is_not_adopted() {
    let rig = rig().await;
    // The user's first name exists in our org, but its machine is another user's (a collision).
    let fly = client_for(&rig.fake);
    let taken = app_name(0);
    let request = CreateAppRequest { name: taken.clone(), org_slug: rig.fake.org_slug().into(), network: None };
    fly.create_app(&request).await.unwrap();
    let other = CreateMachineRequest {
        config: MachineConfig {
            image: "img".into(),
            metadata: names::machine_metadata("usr_someone_else", "p0"),
            ..Default::default()
        },
        ..Default::default()
    };
    fly.create_machine(&taken, &other).await.unwrap();

    rig.start().await;
    assert_eq!(rig.record().await.app_name, Some(app_name(1)));
    assert_eq!(rig.live_machines(&taken).len(), 1, "the other user's app is left alone");
}

#[tokio::test]
async fn fly_secrets_and_the_token_never_show_in_errors_or_stages() {
    let rig = rig().await;
    // A server that echoes the API token back in an error body (the client must scrub it).
    let echoed = format!(r#"{{"error":"bad request for token {}"}}"#, rig.fake.token());
    rig.fake.fail(Op::MachineCreate, Fault::Raw { status: 400, body: echoed });
    let error = rig.provider.start(&spec(), &rig.stages).await.expect_err("the create is refused");

    let public = error.public_message().into_owned();
    assert_eq!(public, "Your agent's machine could not be set up. Try again in a few minutes.");
    let everything = format!("{error}\n{error:?}\n{public}\n{}", rig.stages.text());
    for secret in [rig.fake.token(), GATEWAY_TOKEN, LLM_CREDENTIAL, AGENT_SECRET] {
        assert!(!everything.contains(secret), "{secret:?} leaked into:\n{everything}");
    }
    assert!(everything.contains("<redacted>"), "the echo was scrubbed, not dropped: {everything}");
    // A failed start is not the crash limit's `failed`: the next chat tries again.
    assert_eq!(rig.provider.status(USER).await, MachineState::IdleStopped);

    // Secrets go to app secrets only: the machine's config (readable with any token) has none.
    rig.start().await;
    let app = rig.record().await.app_name.unwrap();
    let config = rig.live_machines(&app)[0]["config"].to_string();
    assert!(
        !config.contains(GATEWAY_TOKEN) && !config.contains(LLM_CREDENTIAL) && !config.contains(AGENT_SECRET),
        "{config}"
    );
}

#[tokio::test]
async fn fly_through_the_app_a_chat_reaches_ready_and_a_stopped_machine_wakes() {
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(5)), ..Default::default() }).await;
    let (forward, target) = late_forwarder().await;
    let (base, address) = (fake.base_url(), format!("ws://{forward}/"));
    let app = TestApp::spawn_with(&[
        "--agent-provider",
        "fly",
        "--fly-api-token",
        fake.token(),
        "--fly-org",
        fake.org_slug(),
        "--fly-image",
        "registry.example/openclaw@sha256:00",
        "--fly-regions",
        "iad,ord",
        "--fly-api-base",
        &base,
        "--fly-agent-address",
        &address,
        "--no-prewarm",
    ])
    .await;
    let (cookie, user_id) = app.signed_up_cookie("fly@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let token = gateway::agent_credentials::gateway_token(&app.state.secret, &user);
    let agent = SimulatedAgent::spawn(AgentOptions { token, ..Default::default() }).await.unwrap();
    *target.lock().unwrap() = Some(agent.addr());

    let mut ws = app.ws(&cookie, "").await;
    let stages = ws.stages_until_ready().await;
    let wanted = ["creating_app", "creating_volume", "creating_machine", "starting", "waiting_ready"];
    let positions: Vec<usize> = wanted
        .iter()
        .map(|w| stages.iter().position(|s| s == w).unwrap_or_else(|| panic!("{w} in {stages:?}")))
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "in order: {stages:?}");
    let reply = ws.chat("main", "hello").await;
    assert!(reply.starts_with("Hello from the simulated OpenClaw agent"), "{reply}");

    let row = |column: &str| format!("SELECT {column} FROM fly_machines WHERE user_id = '{user_id}'");
    let text = |v: &libsql::Value| match v {
        libsql::Value::Text(s) => s.clone(),
        other => panic!("not text: {other:?}"),
    };
    let fly_app = text(&app.sql(&row("app_name")).await[0]);
    let machine_id = text(&app.sql(&row("machine_id")).await[0]);
    assert_eq!(text(&app.sql(&row("region")).await[0]), "iad");
    assert!(!text(&app.sql(&row("volume_id")).await[0]).is_empty());
    let machines = fake.machines(&fly_app);
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0]["id"], machine_id.as_str());
    assert_eq!(machines[0]["config"]["metadata"]["user_id"], user_id.as_str());
    drop(ws);

    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/machine/stop", None).await;
    assert_eq!(res.status(), 204);
    assert_eq!(fake.machines(&fly_app)[0]["state"], "stopped");

    let mut ws = app.ws(&cookie, "").await;
    let stages = ws.stages_until_ready().await;
    assert!(stages.iter().any(|s| s == "starting"), "{stages:?}");
    assert!(!stages.iter().any(|s| s == "creating_machine"), "a wake makes nothing new: {stages:?}");
    assert_eq!(fake.calls(Op::MachineCreate), 1);
    wait_until("the machine runs again", || async { fake.machines(&fly_app)[0]["state"] == "started" }).await;
    let state = app.json_as(&cookie, "/api/machine").await;
    assert_eq!(state["state"], "ready", "{state}");
}
