//! Opt-in: the Machines API client against **real Fly.io**. Runs only with `FLY_API_TOKEN` (an
//! org token for a throwaway org) and `FLY_ORG` set, and is skipped otherwise, CI included (CI
//! has no token and must never spend money). It makes one app `roost-live-<random>` with a
//! volume and a small machine, lists, updates, stops, starts and suspends it, then deletes the
//! app, whatever happened. Optional: `FLY_LIVE_REGION` (default `iad`), `FLY_LIVE_IMAGE`,
//! `FLY_LIVE_API_BASE` (default `https://api.machines.dev`).

use std::time::Duration;

use provisioner::fly::{
    ApiToken, CreateAppRequest, CreateMachineRequest, CreateVolumeRequest, FlyClient, FlyConfig, Guest, Init,
    MachineConfig, MachineFilter, Mount, StopRequest, UpdateMachineRequest, WaitOptions, WaitState, names,
};

async fn exercise(fly: &FlyClient, org: &str, app: &str) -> Result<(), String> {
    let region = std::env::var("FLY_LIVE_REGION").unwrap_or_else(|_| "iad".into());
    let image = std::env::var("FLY_LIVE_IMAGE").unwrap_or_else(|_| "docker.io/library/busybox:1.36".into());
    let e = |what: &'static str| move |err: provisioner::fly::FlyError| format!("{what}: {err}");
    fly.create_app(&CreateAppRequest { name: app.into(), org_slug: org.into(), network: Some(app.into()) })
        .await
        .map_err(e("create app"))?;
    fly.wait_for_app(app).await.map_err(e("wait for app"))?;
    let listed = fly.list_apps(org).await.map_err(e("list apps"))?;
    if !listed.iter().any(|a| a.name == app) {
        eprintln!("note: the app list did not show {app} yet (lists lag)");
    }
    let guest = Guest { cpu_kind: "shared".into(), cpus: 1, memory_mb: 256 };
    let volume = fly
        .create_volume(
            app,
            &CreateVolumeRequest {
                name: "openclaw_data".into(),
                region: region.clone(),
                size_gb: 1,
                encrypted: Some(true),
                compute: Some(guest.clone()),
                compute_image: Some(image.clone()),
                ..Default::default()
            },
        )
        .await
        .map_err(e("create volume"))?;
    let request = CreateMachineRequest {
        name: Some("openclaw".into()),
        region: Some(volume.region.clone()),
        config: MachineConfig {
            image,
            init: Some(Init { cmd: vec!["sleep".into(), "3600".into()], ..Default::default() }),
            guest: Some(guest),
            mounts: vec![Mount { volume: volume.id.clone(), path: "/data".into() }],
            metadata: names::machine_metadata("usr_live", "live-provision"),
            ..Default::default()
        },
        ..Default::default()
    };
    let machine = fly.create_machine(app, &request).await.map_err(e("create machine"))?;
    let wait = WaitOptions { just_created: true, ..WaitOptions::within(Duration::from_secs(300)) };
    fly.wait_for_state(app, &machine.id, WaitState::Started, &wait).await.map_err(e("wait started"))?;
    let filter = MachineFilter {
        metadata: [(names::PROVISION_ID.to_string(), "live-provision".to_string())].into(),
        ..Default::default()
    };
    let found = fly.list_machines(app, &filter).await.map_err(e("list by metadata"))?;
    eprintln!("list by provision_id found {} machine(s)", found.len());
    let stop = StopRequest { signal: Some("SIGTERM".into()), timeout: Some("10s".into()) };
    let current = fly.get_machine(app, &machine.id).await.map_err(e("get"))?;
    fly.stop_machine(app, &machine.id, &stop).await.map_err(e("stop"))?;
    let wait =
        WaitOptions { version: Some(current.instance_id.clone()), ..WaitOptions::within(Duration::from_secs(120)) };
    fly.wait_for_state(app, &machine.id, WaitState::Stopped, &wait).await.map_err(e("wait stopped"))?;
    let current = fly.get_machine(app, &machine.id).await.map_err(e("get"))?;
    let mut config = current.config.clone().ok_or("no config")?;
    config.guest = Some(Guest { cpu_kind: "shared".into(), cpus: 1, memory_mb: 512 });
    let update = UpdateMachineRequest {
        config,
        current_version: Some(current.instance_id.clone()),
        skip_launch: true,
        min_secrets_version: None,
    };
    fly.update_machine(app, &machine.id, &update).await.map_err(e("update (resize)"))?;
    fly.start_machine(app, &machine.id).await.map_err(e("start"))?;
    let wait = WaitOptions::within(Duration::from_secs(300));
    fly.wait_for_state(app, &machine.id, WaitState::Started, &wait).await.map_err(e("wait started again"))?;
    match fly.suspend_machine(app, &machine.id).await {
        Ok(()) => {
            let wait = WaitOptions::within(Duration::from_secs(120));
            fly.wait_for_state(app, &machine.id, WaitState::Suspended, &wait).await.map_err(e("wait suspended"))?;
        }
        Err(err) => eprintln!("note: suspend refused ({err}); Roost stops instead in that case"),
    }
    Ok(())
}

#[tokio::test]
async fn fly_live_against_real_fly_when_a_token_is_given() {
    let (Ok(token), Ok(org)) = (std::env::var("FLY_API_TOKEN"), std::env::var("FLY_ORG")) else {
        eprintln!("SKIPPED: set FLY_API_TOKEN and FLY_ORG (a throwaway org) to run against real Fly.io");
        return;
    };
    let mut config = FlyConfig::new(ApiToken::new(&token));
    if let Ok(base) = std::env::var("FLY_LIVE_API_BASE") {
        config.base_url = base;
    }
    let fly = FlyClient::new(config).expect("a usable token");
    let app = format!("roost-live-{}", uuid::Uuid::new_v4().simple().to_string().get(..12).unwrap_or("x"));
    let result = exercise(&fly, &org, &app).await;
    // Always cleaned up; a 404 means it never got made.
    let deleted = fly.delete_app(&app).await;
    result.unwrap_or_else(|e| panic!("live Fly: {e}"));
    deleted.expect("the live app is deleted");
}
