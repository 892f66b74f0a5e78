//! The `fly` provider and its reconciler under randomized faults: each schedule (seeded, so a
//! failing one is replayed from its printed seed) queues faults of every kind the Machines API
//! really produces on random operations, lets lists lag and new objects 404, crashes the
//! provisioner at random steps (its start task aborted mid-call) and restarts it (a new provider
//! on the same store and fake), loses records and backdates half-done ones. Then users start
//! again and the reconciler runs until a round finds nothing to do. Every schedule must end with
//! exactly one app, volume and machine per user, and nothing else in the org.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fakes::fly::{FakeFly, FakeFlyOptions, Fault, Op};
use gateway::machines::simulated::{Options as AgentOptions, SimulatedAgent};
use provisioner::fly::{
    CreateAppRequest, CreateMachineRequest, FlyClient, FlyOptions, FlyProvider, FlyStore, Host, MachineConfig,
    MemoryFlyStore, Report, RetryPolicy, Turn, names,
};
use provisioner::{AgentSpec, LlmEndpoint, Progress, Provider, Stage};
use serde_json::Value;

use crate::fly_rig::client_for;

const NAME_KEY: &[u8] = b"reconcile test key";
const TOKEN: &str = "gw-token-reconcile-0123456789";
const SCHEDULES: u64 = 100;

/// splitmix64: a seeded generator, so a schedule is replayed from its seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

struct Quiet;

impl Progress for Quiet {
    fn report(&self, _user_id: &str, _stage: Stage, _detail: &str) {}
}

/// Every user is free for the reconciler: the races between instances are the two-process
/// test's; this one is about Fly's faults.
struct FreeHost;

#[async_trait]
impl Host for FreeHost {
    async fn begin(&self, _user_id: &str) -> Turn {
        Turn::Free
    }
    async fn end(&self, _user_id: &str, _turn: Turn) {}
    async fn spec(&self, user_id: &str) -> Option<AgentSpec> {
        Some(spec(user_id))
    }
    fn progress(&self) -> &dyn Progress {
        &Quiet
    }
}

fn spec(user: &str) -> AgentSpec {
    AgentSpec {
        user_id: user.into(),
        gateway_token: TOKEN.into(),
        agent_secret: format!("agent-secret-{user}"),
        llm: LlmEndpoint {
            base_url: "https://roost.example/llm/openai/v1".into(),
            api: "openai-completions",
            credential: format!("rak_{user}.credential"),
            model: "gpt-test".into(),
        },
        guest: None,
        suspend: None,
    }
}

fn provider(fake: &FakeFly, store: &Arc<MemoryFlyStore>, agent: &SimulatedAgent) -> Arc<FlyProvider> {
    let mut options = FlyOptions::new(
        fake.org_slug().into(),
        vec!["iad".into(), "ord".into(), "ams".into()],
        "img@sha256:00".into(),
        NAME_KEY.into(),
    );
    options.agent_address = agent.ws_url();
    options.start_deadline = Duration::from_secs(10);
    options.stop_deadline = Duration::from_secs(10);
    options.ready_timeout = Duration::from_secs(10);
    options.sleep = Arc::new(|_| Box::pin(async {}));
    Arc::new(FlyProvider::new(client_for(fake), options, store.clone()))
}

/// What a schedule injected and what the reconciler found, summed over schedules.
#[derive(Default)]
struct Tally {
    faults: BTreeMap<&'static str, usize>,
    crashes: usize,
    lost_records: usize,
    aged_records: usize,
    strays: usize,
    lagging_lists: usize,
    not_found_after_create: usize,
    found: Report,
    /// Orphans, duplicates and leftovers found by the last round of every schedule: must be 0.
    left_after_sweep: usize,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (kind, n) in other.faults {
            *self.faults.entry(kind).or_default() += n;
        }
        self.crashes += other.crashes;
        self.lost_records += other.lost_records;
        self.aged_records += other.aged_records;
        self.strays += other.strays;
        self.lagging_lists += other.lagging_lists;
        self.not_found_after_create += other.not_found_after_create;
        self.add(&other.found);
        self.left_after_sweep += other.left_after_sweep;
    }

    fn add(&mut self, report: &Report) {
        let f = &mut self.found;
        f.resumed += report.resumed;
        f.given_up += report.given_up;
        f.orphan_apps += report.orphan_apps;
        f.duplicate_machines += report.duplicate_machines;
        f.leftover_volumes += report.leftover_volumes;
        f.put_down += report.put_down;
    }
}

const OPS: [Op; 16] = [
    Op::AppCreate,
    Op::AppGet,
    Op::AppList,
    Op::AppDelete,
    Op::SecretsSet,
    Op::VolumeCreate,
    Op::VolumeList,
    Op::VolumeGet,
    Op::VolumeDelete,
    Op::MachineCreate,
    Op::MachineList,
    Op::MachineGet,
    Op::MachineStart,
    Op::MachineStop,
    Op::MachineWait,
    Op::MachineDelete,
];

/// A random fault for `op`, and the name it is counted under.
fn fault(rng: &mut Rng, op: Op) -> (&'static str, Fault) {
    let creates = matches!(op, Op::AppCreate | Op::VolumeCreate | Op::MachineCreate);
    match rng.below(9) {
        0 if creates => ("408 that secretly succeeded", Fault::LostResponse(408)),
        0 | 1 => ("409", Fault::Status(409)),
        2 if op == Op::MachineCreate => ("412 volume host full", Fault::VolumeHostFull),
        2 => ("412", Fault::Status(412)),
        3 if op == Op::AppCreate => ("422 name taken", Fault::NameTaken),
        3 => ("408", Fault::Status(408)),
        4 => ("429", Fault::RateLimited { retry_after: Some("0".into()) }),
        5 => ("5xx", Fault::Status(rng.pick(&[500, 502, 503]))),
        6 if creates => ("5xx that secretly succeeded", Fault::LostResponse(503)),
        6 | 7 => {
            let after_commit = rng.chance(50);
            (if after_commit { "reset after commit" } else { "connection reset" }, Fault::Reset { after_commit })
        }
        _ => ("connection reset", Fault::Reset { after_commit: false }),
    }
}

/// Starts the user's agent in a task, and aborts it once `steps` more requests reached the fake
/// (`None`: lets it finish). Returns whether it was cut short.
async fn start_maybe_crashing(provider: &Arc<FlyProvider>, fake: &FakeFly, user: &str, steps: Option<usize>) -> bool {
    let provider = provider.clone();
    let user_spec = spec(user);
    let task = tokio::spawn(async move { provider.start(&user_spec, &Quiet).await });
    let Some(steps) = steps else {
        let _ = task.await;
        return false;
    };
    let before = fake.requests_seen();
    loop {
        if task.is_finished() {
            return false;
        }
        if fake.requests_seen() >= before + steps {
            task.abort();
            let _ = task.await;
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A machine of Roost's beside the recorded one, as a create that slipped past a lagging list
/// leaves (the fake's per-app name check stops the provider making one itself).
async fn add_duplicate(fake: &FakeFly, app: &str, user: &str) {
    let request = CreateMachineRequest {
        name: Some("openclaw-dup".into()),
        config: MachineConfig {
            image: "img@sha256:00".into(),
            metadata: names::machine_metadata(user, "a-lost-attempt"),
            ..Default::default()
        },
        ..Default::default()
    };
    let _ = client_for(fake).create_machine(app, &request).await;
}

/// Creates an app for the test itself, through whatever faults are still queued.
async fn create_app(client: &FlyClient, fake: &FakeFly, request: &CreateAppRequest) -> Result<(), String> {
    for _ in 0..20 {
        let _ = client.create_app(request).await;
        if fake.app(&request.name).is_some() {
            return Ok(());
        }
    }
    Err(format!("the test could not create {}", request.name))
}

fn live(machines: Vec<Value>) -> Vec<Value> {
    machines.into_iter().filter(|m| m["state"] != "destroyed" && m["state"] != "destroying").collect()
}

async fn run_schedule(seed: u64, agent: &SimulatedAgent, tally: &mut Tally) -> Result<(), String> {
    let mut rng = Rng(seed);
    let lag = rng.below(3) as u32;
    let not_found = rng.below(3) as u32;
    tally.lagging_lists += usize::from(lag > 0);
    tally.not_found_after_create += usize::from(not_found > 0);
    let fake = FakeFly::spawn(FakeFlyOptions {
        transition_step: Some(Duration::from_millis(2)),
        list_lag: lag,
        not_found_after_create: not_found,
        ..Default::default()
    })
    .await;
    let store = Arc::new(MemoryFlyStore::default());
    let users: Vec<String> = (0..1 + rng.below(3)).map(|i| format!("usr_s{seed}_{i}")).collect();

    // Chaos: faults queued, starts crashed at random steps, restarts on the same store.
    let mut current = provider(&fake, &store, agent);
    for _ in 0..1 + rng.below(4) {
        for _ in 0..rng.below(6) {
            let op = rng.pick(&OPS);
            let (kind, f) = fault(&mut rng, op);
            *tally.faults.entry(kind).or_default() += 1;
            fake.fail(op, f);
        }
        let user = users[rng.below(users.len() as u64) as usize].clone();
        let crash = rng.chance(60).then(|| 1 + rng.below(14) as usize);
        if start_maybe_crashing(&current, &fake, &user, crash).await {
            tally.crashes += 1;
            // A restarted Roost: nothing in memory, the same store and Fly.
            current = provider(&fake, &store, agent);
        }
        if rng.chance(10) {
            // A record lost (a restore from an old backup, say): its app becomes an orphan.
            store.clear(&user).await.map_err(|e| e.to_string())?;
            tally.lost_records += 1;
        } else if rng.chance(15) {
            // A provision left half done long ago: past its deadline.
            store.age(&user, 3_600);
            tally.aged_records += 1;
        }
        if rng.chance(25) {
            let report = current.reconcile(&FreeHost).await;
            tally.add(&report);
        }
    }
    for user in &users {
        if rng.chance(20)
            && let Ok(Some(record)) = store.load(user).await
            && let (Some(app), Some(_)) = (record.app_name, record.machine_id)
        {
            add_duplicate(&fake, &app, user).await;
        }
    }

    // Apps no record names: a deleted user's, whose destroy was cut short (an orphan, maybe with
    // its machine), and an app of the org that is not Roost's (never to be touched).
    let client = client_for(&fake);
    let org = fake.org_slug().to_string();
    let gone_user = format!("usr_gone_{seed}");
    if rng.chance(40) {
        let name = names::app_name("roost", NAME_KEY, &gone_user, 0).map_err(|e| e.to_string())?;
        let request = CreateAppRequest { name: name.clone(), org_slug: org.clone(), network: Some(name.clone()) };
        create_app(&client, &fake, &request).await?;
        if rng.chance(50) {
            add_duplicate(&fake, &name, &gone_user).await;
        }
        tally.strays += 1;
    }
    let request = CreateAppRequest { name: format!("edge-{seed}"), org_slug: org, network: None };
    create_app(&client, &fake, &request).await?;

    // Calm: every user starts (retrying what the leftover faults refuse), then the reconciler
    // runs until a round finds nothing.
    let restarted = provider(&fake, &store, agent);
    for user in &users {
        let mut last = String::new();
        let started = 'tries: {
            for _ in 0..12 {
                match restarted.start(&spec(user), &Quiet).await {
                    Ok(_) => break 'tries true,
                    Err(e) => last = e.to_string(),
                }
            }
            false
        };
        if !started {
            return Err(format!("{user} never started: {last}"));
        }
    }
    // Lists lag (up to two lists per new object here), so one clean round proves nothing: the
    // sweep is done once three rounds in a row find nothing.
    let mut clean = 0;
    for _ in 0..16 {
        let report = restarted.reconcile(&FreeHost).await;
        tally.add(&report);
        let found = report.orphan_apps + report.duplicate_machines + report.leftover_volumes;
        let quiet = found == 0 && report.errors.is_empty() && report.resumed == 0 && report.given_up == 0;
        clean = if quiet { clean + 1 } else { 0 };
        if clean == 3 {
            break;
        }
    }
    if clean < 3 {
        return Err("the reconciler never settled".into());
    }
    // One more round after that: the sweep must find nothing left.
    let last = restarted.reconcile(&FreeHost).await;
    tally.left_after_sweep += last.orphan_apps + last.duplicate_machines + last.leftover_volumes;

    // Exactly one app, volume and machine per user, each the recorded one; nothing else.
    let mut expected_apps = HashSet::new();
    for user in &users {
        let record = store.load(user).await.map_err(|e| e.to_string())?.ok_or(format!("{user}: no record"))?;
        let app = record.app_name.clone().ok_or(format!("{user}: no app"))?;
        let machines = live(fake.machines(&app));
        if machines.len() != 1 || machines[0]["id"].as_str() != record.machine_id.as_deref() {
            return Err(format!("{user}: machines {machines:?}, recorded {:?}", record.machine_id));
        }
        let volumes = fake.volumes(&app);
        if volumes.len() != 1 || volumes[0]["id"].as_str() != record.volume_id.as_deref() {
            return Err(format!("{user}: volumes {volumes:?}, recorded {:?}", record.volume_id));
        }
        if machines[0]["config"]["mounts"][0]["volume"] != volumes[0]["id"] {
            return Err(format!("{user}: the machine does not mount the recorded volume"));
        }
        expected_apps.insert(app);
    }
    expected_apps.insert(format!("edge-{seed}"));
    let apps: HashSet<String> = fake.app_names().into_iter().collect();
    if apps != expected_apps {
        return Err(format!("apps {apps:?}, expected {expected_apps:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fly_randomized_faults_and_crashes_converge_to_one_app_volume_and_machine_per_user() {
    let agent =
        Arc::new(SimulatedAgent::spawn(AgentOptions { token: TOKEN.into(), ..Default::default() }).await.unwrap());
    let replay: Option<u64> = std::env::var("FLY_SCHEDULE_SEED").ok().and_then(|s| s.parse().ok());
    let seeds: Vec<u64> = match replay {
        Some(seed) => vec![seed],
        None => (0..SCHEDULES).map(|i| 0x5EED_0000 + i).collect(),
    };
    let count = seeds.len();
    let mut tally = Tally::default();
    // A few schedules at a time (each has its own fake): they mostly wait on the fake's clock.
    for chunk in seeds.chunks(6) {
        let mut runs = tokio::task::JoinSet::new();
        for &seed in chunk {
            let agent = agent.clone();
            runs.spawn(async move {
                let mut tally = Tally::default();
                let run = tokio::time::timeout(Duration::from_secs(30), run_schedule(seed, &agent, &mut tally)).await;
                (seed, run, tally)
            });
        }
        while let Some(joined) = runs.join_next().await {
            let (seed, run, one) = joined.expect("a schedule task");
            match run {
                Ok(Ok(())) => tally.merge(one),
                Ok(Err(e)) => {
                    panic!("schedule with seed {seed} did not converge: {e}\nreplay: FLY_SCHEDULE_SEED={seed}")
                }
                Err(_) => panic!("schedule with seed {seed} hung\nreplay: FLY_SCHEDULE_SEED={seed}"),
            }
        }
    }
    let faults: Vec<String> = tally.faults.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    let f = &tally.found;
    println!(
        "fly randomized: {count} schedules; faults injected: {}; schedules with lagging lists: {}, with \
         404-after-create: {}; provisioner crashes: {}; records lost: {}, backdated: {}; stray apps: {}; reconciler found: {} \
         orphan apps, {} duplicate machines, {} leftover volumes, resumed {}, gave up {}, put down {}; \
         orphans/duplicates/leftovers after the sweep: {}",
        faults.join(", "),
        tally.lagging_lists,
        tally.not_found_after_create,
        tally.crashes,
        tally.lost_records,
        tally.aged_records,
        tally.strays,
        f.orphan_apps,
        f.duplicate_machines,
        f.leftover_volumes,
        f.resumed,
        f.given_up,
        f.put_down,
        tally.left_after_sweep,
    );
    assert_eq!(tally.left_after_sweep, 0);
    if replay.is_none() {
        let exercised = tally.crashes > 0 && f.orphan_apps > 0 && f.duplicate_machines > 0 && f.given_up > 0;
        assert!(exercised, "the schedules exercised crashes, the sweep and the deadline");
    }
}

fn machine_of(fake: &FakeFly, app: &str) -> Value {
    let machines = live(fake.machines(app));
    assert_eq!(machines.len(), 1, "{machines:?}");
    machines[0].clone()
}

async fn app_of(store: &MemoryFlyStore, user: &str) -> String {
    store.load(user).await.unwrap().and_then(|r| r.app_name).expect("an app")
}

#[tokio::test]
async fn fly_idle_stop_suspends_where_allowed_wake_resumes_and_destroy_deletes_the_app() {
    let agent = SimulatedAgent::spawn(AgentOptions { token: TOKEN.into(), ..Default::default() }).await.unwrap();
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(2)), ..Default::default() }).await;
    let store = Arc::new(MemoryFlyStore::default());
    let user = "usr_suspend";
    let mut options =
        FlyOptions::new(fake.org_slug().into(), vec!["iad".into()], "img@sha256:00".into(), NAME_KEY.into());
    options.agent_address = agent.ws_url();
    options.sleep = Arc::new(|_| Box::pin(async {}));
    options.suspend = true;
    let suspending = FlyProvider::new(client_for(&fake), options, store.clone());
    suspending.start(&spec(user), &Quiet).await.expect("started");
    let app = app_of(&store, user).await;

    suspending.stop(user).await.expect("put down");
    assert_eq!(machine_of(&fake, &app)["state"], "suspended", "suspend is allowed and 2 GB fits");
    let stops = fake.calls(Op::MachineStop);
    suspending.stop(user).await.expect("put down again");
    assert_eq!(fake.calls(Op::MachineStop), stops, "a suspended machine is not stopped (that drops its snapshot)");

    // Wake: start, wait, ready.
    suspending.start(&spec(user), &Quiet).await.expect("woken");
    assert_eq!(machine_of(&fake, &app)["state"], "started");
    assert_eq!(fake.calls(Op::MachineCreate), 1, "a wake creates nothing");

    // Without the plan's permission (the default), an idle machine is stopped.
    let stopping = provider(&fake, &store, &agent);
    stopping.stop(user).await.expect("stopped");
    assert_eq!(machine_of(&fake, &app)["state"], "stopped");
    assert_eq!(fake.calls(Op::MachineSuspend), 1);

    // Destroy deletes the app (cascading); a destroy repeated after the app is gone is done.
    stopping.destroy(user).await.expect("destroyed");
    assert!(fake.app(&app).is_none());
    store
        .save(
            user,
            &provisioner::fly::FlyRecord {
                app_name: Some(app.clone()),
                provision_id: "p".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    stopping.destroy(user).await.expect("a 404 counts as done");
    assert!(store.load(user).await.unwrap().is_none());
}

/// Three users provisioned on `img@sha256:00` and put down.
async fn three_stopped_users(fake: &FakeFly, store: &Arc<MemoryFlyStore>, agent: &SimulatedAgent) -> Vec<String> {
    let first = provider(fake, store, agent);
    let users: Vec<String> = (0..3).map(|i| format!("usr_roll_{i}")).collect();
    for user in &users {
        first.start(&spec(user), &Quiet).await.expect("started");
        first.stop(user).await.expect("stopped");
    }
    users
}

fn with_options(
    fake: &FakeFly,
    store: &Arc<MemoryFlyStore>,
    agent: &SimulatedAgent,
    change: impl FnOnce(&mut FlyOptions),
) -> FlyProvider {
    let mut options = FlyOptions::new(
        fake.org_slug().into(),
        vec!["iad".into(), "ord".into(), "ams".into()],
        "img@sha256:00".into(),
        NAME_KEY.into(),
    );
    options.agent_address = agent.ws_url();
    options.sleep = Arc::new(|_| Box::pin(async {}));
    change(&mut options);
    FlyProvider::new(client_for(fake), options, store.clone())
}

async fn images(fake: &FakeFly, store: &MemoryFlyStore, users: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for user in users {
        let m = machine_of(fake, &app_of(store, user).await);
        assert_eq!(m["state"], "stopped", "every machine is down between rounds");
        out.push(m["config"]["image"].as_str().unwrap().to_string());
    }
    out.sort();
    out
}

#[tokio::test]
async fn fly_a_new_image_rolls_out_in_canary_batches_and_a_failed_canary_rolls_back_and_stops() {
    let agent = SimulatedAgent::spawn(AgentOptions { token: TOKEN.into(), ..Default::default() }).await.unwrap();
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(2)), ..Default::default() }).await;
    let store = Arc::new(MemoryFlyStore::default());
    let users = three_stopped_users(&fake, &store, &agent).await;

    let v1 = with_options(&fake, &store, &agent, |o| o.image = "img@sha256:11".into());
    let round = v1.reconcile(&FreeHost).await;
    assert_eq!(round.rolled_out, 1, "the canary alone first: {round:?}");
    assert_eq!(images(&fake, &store, &users).await, ["img@sha256:00", "img@sha256:00", "img@sha256:11"]);
    assert_eq!(v1.reconcile(&FreeHost).await.rolled_out, 1, "then as many as are on it");
    assert_eq!(v1.reconcile(&FreeHost).await.rolled_out, 1, "never more than remain");
    assert_eq!(images(&fake, &store, &users).await, ["img@sha256:11"; 3]);
    assert_eq!(v1.reconcile(&FreeHost).await, Report::default(), "done: nothing more to do");

    // The next image's canary never gets to `started`: it goes back, and the rollout stops.
    let v2 = with_options(&fake, &store, &agent, |o| o.image = "img@sha256:22".into());
    for _ in 0..RetryPolicy::standard().max_attempts {
        fake.fail(Op::MachineWait, Fault::Status(503));
    }
    let round = v2.reconcile(&FreeHost).await;
    assert_eq!((round.rolled_out, round.rolled_back), (0, 1), "{round:?}");
    assert_eq!(images(&fake, &store, &users).await, ["img@sha256:11"; 3], "back on the image it had");
    assert!(store.failed_rollout("img@sha256:22").await.unwrap().is_some(), "the stop is recorded");
    let updates = fake.calls(Op::MachineUpdate);
    assert_eq!(v2.reconcile(&FreeHost).await.rolled_out, 0);
    assert_eq!(fake.calls(Op::MachineUpdate), updates, "a stopped rollout is not started again");
}

#[tokio::test]
async fn fly_a_size_change_is_applied_to_machines_that_are_down_and_waits_for_running_ones() {
    let agent = SimulatedAgent::spawn(AgentOptions { token: TOKEN.into(), ..Default::default() }).await.unwrap();
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(2)), ..Default::default() }).await;
    let store = Arc::new(MemoryFlyStore::default());
    let users = three_stopped_users(&fake, &store, &agent).await;
    let bigger = provisioner::fly::parse_machine_size("performance-2x:4096").unwrap();
    let resized = with_options(&fake, &store, &agent, |o| o.guest = bigger.clone());
    // One user is chatting here: their running machine is left alone.
    resized.start(&spec(&users[0]), &Quiet).await.expect("started");
    struct BusyFirst;
    #[async_trait]
    impl Host for BusyFirst {
        async fn begin(&self, user_id: &str) -> Turn {
            if user_id == "usr_roll_0" { Turn::Here } else { Turn::Free }
        }
        async fn end(&self, _user_id: &str, _turn: Turn) {}
        async fn spec(&self, user_id: &str) -> Option<AgentSpec> {
            Some(spec(user_id))
        }
        fn progress(&self) -> &dyn Progress {
            &Quiet
        }
    }
    let round = resized.reconcile(&BusyFirst).await;
    assert_eq!(round.resized, 2, "{round:?}");
    for (i, user) in users.iter().enumerate() {
        let m = machine_of(&fake, &app_of(&store, user).await);
        let guest = &m["config"]["guest"];
        if i == 0 {
            assert_eq!((m["state"].as_str(), guest["memory_mb"].as_u64()), (Some("started"), Some(2048)));
        } else {
            assert_eq!((m["state"].as_str(), guest["memory_mb"].as_u64()), (Some("stopped"), Some(4096)), "{m}");
            assert_eq!(guest["cpu_kind"], "performance");
            assert!(m["config"]["mounts"][0]["volume"].is_string(), "the whole config went back");
        }
    }
}

/// A user on a plan: their spec carries the plan's size and suspend choice.
fn planned(user: &str, size: &str, suspend: bool) -> AgentSpec {
    let guest = provisioner::fly::parse_machine_size(size).unwrap();
    AgentSpec { guest: Some(guest), suspend: Some(suspend), ..spec(user) }
}

/// The reconciler's host after the user's plan changed to `size`.
struct PlanHost(&'static str);

#[async_trait]
impl Host for PlanHost {
    async fn begin(&self, _user_id: &str) -> Turn {
        Turn::Free
    }
    async fn end(&self, _user_id: &str, _turn: Turn) {}
    async fn spec(&self, user_id: &str) -> Option<AgentSpec> {
        Some(planned(user_id, self.0, false))
    }
    fn progress(&self) -> &dyn Progress {
        &Quiet
    }
}

#[tokio::test]
async fn fly_the_plan_sets_size_and_suspend_and_a_plan_change_resizes_a_down_machine() {
    let agent = SimulatedAgent::spawn(AgentOptions { token: TOKEN.into(), ..Default::default() }).await.unwrap();
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(2)), ..Default::default() }).await;
    let store = Arc::new(MemoryFlyStore::default());
    // The provider's own defaults: shared-cpu-2x with 2 GB, never suspend.
    let fly = provider(&fake, &store, &agent);
    let user = "usr_plan_small";
    fly.start(&planned(user, "shared-cpu-1x:1024", true), &Quiet).await.expect("started");
    let app = app_of(&store, user).await;
    let guest = machine_of(&fake, &app)["config"]["guest"].clone();
    assert_eq!(
        (guest["cpu_kind"].as_str(), guest["cpus"].as_u64(), guest["memory_mb"].as_u64()),
        (Some("shared"), Some(1), Some(1024))
    );
    fly.stop(user).await.expect("put down");
    assert_eq!(machine_of(&fake, &app)["state"], "suspended", "the plan allows suspend");

    // An upgrade: the next round resizes the down machine to the new plan's size.
    let round = fly.reconcile(&PlanHost("performance-2x:4096")).await;
    assert_eq!(round.resized, 1, "{round:?}");
    let guest = machine_of(&fake, &app)["config"]["guest"].clone();
    assert_eq!(
        (guest["cpu_kind"].as_str(), guest["cpus"].as_u64(), guest["memory_mb"].as_u64()),
        (Some("performance"), Some(2), Some(4096))
    );
    let round = fly.reconcile(&PlanHost("performance-2x:4096")).await;
    assert_eq!(round.resized, 0, "the size is the plan's now: {round:?}");

    // A plan without suspend beats a provider that suspends: the idle machine is stopped.
    let suspending = with_options(&fake, &store, &agent, |o| o.suspend = true);
    let other = "usr_plan_nosuspend";
    suspending.start(&planned(other, "shared-cpu-1x:1024", false), &Quiet).await.expect("started");
    suspending.stop(other).await.expect("put down");
    assert_eq!(machine_of(&fake, &app_of(&store, other).await)["state"], "stopped");
    assert_eq!(fake.calls(Op::MachineSuspend), 1, "only the first user's plan suspends");
}
