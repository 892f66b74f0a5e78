//! The provisioning steps of research §6, each idempotent: app (adopted only when it is ours),
//! secrets, volume (an unattached one reused), machine (looked up by its `provision_id` before
//! any retry of a create). Each id is saved the moment Fly returns it.

use std::collections::BTreeMap;

use super::error::{FlyError, TransportKind};
use super::names;
use super::provider::{FlyProvider, by_provision_id, cloud};
use super::store::FlyRecord;
use super::types::*;
use crate::{AgentSpec, Progress, ProvisionError, Stage};

/// The app secrets the agent reads (the same names the local provider puts in its environment).
const GATEWAY_TOKEN_SECRET: &str = "OPENCLAW_GATEWAY_TOKEN";
const LLM_CREDENTIAL_SECRET: &str = "ROOST_LLM_CREDENTIAL";
/// What the image's sidecar (`roost-agent`) admits Roost by.
const AGENT_SECRET_SECRET: &str = "ROOST_AGENT_SECRET";
/// Every machine is named this: names are unique per app, so a duplicate create gets a 409, a
/// second guard after the metadata lookup (§6 item 6).
const MACHINE_NAME: &str = "openclaw";
const VOLUME_NAME: &str = "openclaw_data";
/// The volume's mount: the image (`agent/Dockerfile`) keeps everything of the user's there.
const VOLUME_PATH: &str = "/data";
/// OpenClaw's state dir and HOME on the volume, as the sidecar is told (it writes the config
/// into the state dir and points OpenClaw at it).
const STATE_DIR: &str = "/data/openclaw";
const HOME_DIR: &str = "/data/home";
/// OpenClaw's TMPDIR on the volume: Node's compile cache there outlives a stop.
const TMP_DIR: &str = "/data/tmp";
/// App names tried before giving up (each further one only when another customer holds one).
const NAME_ATTEMPTS: u32 = 4;
/// Creates of one object tried in one region, after ambiguous failures.
const CREATE_ATTEMPTS: u32 = 3;
/// Machine creates in all (regions walked, volumes forked) before giving up.
const MACHINE_ATTEMPTS: u32 = 8;

/// A create whose request may have reached Fly and been acted on: the object may exist (research
/// pitfall 9). Anything but a refusal about the request itself.
fn ambiguous(e: &FlyError) -> bool {
    matches!(
        e,
        FlyError::Timeout(_)
            | FlyError::Server(_)
            | FlyError::RateLimited { .. }
            | FlyError::Transport { kind: TransportKind::Timeout | TransportKind::Other, .. }
    )
}

/// Room is short where this was asked for: another region (or a forked volume) may have it. A
/// 403 on a create is a regional memory quota (research §4).
fn no_room(e: &FlyError) -> bool {
    e.is_capacity() || matches!(e, FlyError::Forbidden(_))
}

/// "Volume host full" (412 insufficient resources): the volume's host cannot fit the machine,
/// but its region may (pitfall 4).
fn host_full(e: &FlyError) -> bool {
    matches!(e, FlyError::PreconditionFailed(_)) && e.is_capacity()
}

impl FlyProvider {
    /// App, secrets, volume and machine, resuming from the user's record.
    pub(super) async fn provision(
        &self,
        spec: &AgentSpec,
        progress: &dyn Progress,
    ) -> Result<(String, Machine), ProvisionError> {
        let user = spec.user_id.as_str();
        let mut record = self.record(user).await?;
        let app = self.ensure_app(user, &mut record, progress).await?;
        self.ensure_secrets(spec, &app, &mut record).await?;
        self.ensure_volume(user, &app, &mut record, progress).await?;
        let machine = self.ensure_machine(spec, &app, &mut record, progress).await?;
        Ok((app, machine))
    }

    /// Names to try: the one recorded (a provision resumed), then the deterministic ones.
    fn app_names(&self, user: &str, record: &FlyRecord) -> Result<Vec<String>, ProvisionError> {
        let mut names: Vec<String> = record.app_name.iter().cloned().collect();
        for attempt in 0..NAME_ATTEMPTS {
            let name = names::app_name(&self.options.app_prefix, &self.options.name_key, user, attempt)
                .map_err(|e| ProvisionError::Cloud(e.to_string()))?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }

    async fn ensure_app(
        &self,
        user: &str,
        record: &mut FlyRecord,
        progress: &dyn Progress,
    ) -> Result<String, ProvisionError> {
        progress.report(user, Stage::CreatingApp, "creating your agent's app");
        for name in self.app_names(user, record)? {
            if record.app_name.as_ref() != Some(&name) {
                record.app_name = Some(name.clone());
                record.volume_id = None;
                record.machine_id = None;
                record.secrets_version = None;
                self.save(user, record).await?;
            }
            if self.claim_app(user, &name).await? {
                return Ok(name);
            }
            tracing::info!(user_id = user, app = %name, "the app name is another's; trying the next");
            progress.report(user, Stage::CreatingApp, "that app name was taken; trying another");
        }
        Err(ProvisionError::Cloud(format!("no free app name after {NAME_ATTEMPTS} attempts")))
    }

    /// Creates the app, or adopts it if it exists and is ours. `false`: the name is someone else's.
    async fn claim_app(&self, user: &str, name: &str) -> Result<bool, ProvisionError> {
        // The org's default network: the gateway reaches the sidecar over 6PN directly, and the
        // sidecar's per-machine secret keeps other agents out (README "Agent networking").
        let request = CreateAppRequest { name: name.to_string(), org_slug: self.options.org.clone(), network: None };
        for _ in 0..CREATE_ATTEMPTS {
            match self.fly.create_app(&request).await {
                Ok(()) => {
                    // The create's body differs by API version: re-GET until it shows (§2.1).
                    self.fly.wait_for_app(name).await.map_err(|e| cloud("reading the new app", e))?;
                    return Ok(true);
                }
                Err(e) if e.is_name_taken() || matches!(e, FlyError::Conflict(_)) => {
                    return self.app_is_ours(user, name).await;
                }
                Err(e) if ambiguous(&e) => {
                    tracing::warn!(user_id = user, error = %e, "creating the app may have failed; looking");
                    self.pause().await;
                    match self.fly.get_app(name).await {
                        Ok(_) => return self.app_is_ours(user, name).await,
                        Err(e) if e.is_not_found() => continue,
                        Err(FlyError::Forbidden(_)) => return Ok(false),
                        Err(e) => return Err(cloud("reading the app", e)),
                    }
                }
                Err(e) => return Err(cloud("creating the app", e)),
            }
        }
        Err(ProvisionError::Cloud(format!("creating the app {name} kept failing")))
    }

    /// An existing app is adopted only if we can read it (403: another customer's) and no machine
    /// on it belongs to another user (a hash collision, Kilo-Org/cloud#299).
    async fn app_is_ours(&self, user: &str, name: &str) -> Result<bool, ProvisionError> {
        match self.fly.get_app(name).await {
            Ok(app) => {
                if app.organization.as_ref().is_some_and(|o| !o.slug.is_empty() && o.slug != self.options.org) {
                    return Ok(false);
                }
            }
            Err(FlyError::Forbidden(_)) => return Ok(false),
            Err(e) => return Err(cloud("reading the app", e)),
        }
        let machines =
            self.fly.list_machines(name, &MachineFilter::default()).await.map_err(|e| cloud("listing machines", e))?;
        Ok(machines.iter().all(|m| m.metadata(names::USER_ID) == Some(user)))
    }

    /// Sets the agent's secrets (idempotent: the same values again) before its machine exists, and
    /// keeps the version the machine must see.
    async fn ensure_secrets(&self, spec: &AgentSpec, app: &str, record: &mut FlyRecord) -> Result<(), ProvisionError> {
        if record.machine_id.is_some() && record.secrets_version.is_some() {
            return Ok(());
        }
        let values = BTreeMap::from([
            (GATEWAY_TOKEN_SECRET.to_string(), Some(spec.gateway_token.clone())),
            (LLM_CREDENTIAL_SECRET.to_string(), Some(spec.llm.credential.clone())),
            (AGENT_SECRET_SECRET.to_string(), Some(spec.agent_secret.clone())),
        ]);
        let update = self.fly.set_secrets(app, &values).await.map_err(|e| cloud("setting the app's secrets", e))?;
        record.secrets_version = Some(update.version);
        self.save(&spec.user_id, record).await
    }

    /// The regions to try, the recorded one first, then the rest in configured order.
    fn regions_from(&self, first: Option<&str>) -> Vec<String> {
        let mut regions: Vec<String> = first.map(str::to_string).into_iter().collect();
        regions.extend(self.options.regions.iter().filter(|r| Some(r.as_str()) != first).cloned());
        regions
    }

    fn volume_request(&self, region: &str) -> CreateVolumeRequest {
        CreateVolumeRequest {
            name: VOLUME_NAME.to_string(),
            region: region.to_string(),
            size_gb: self.options.volume_size_gb,
            encrypted: Some(true),
            // Placement hints: land where the machine fits too (pitfall 5).
            compute: Some(self.options.guest.clone()),
            compute_image: Some(self.options.image.clone()),
            ..Default::default()
        }
    }

    async fn ensure_volume(
        &self,
        user: &str,
        app: &str,
        record: &mut FlyRecord,
        progress: &dyn Progress,
    ) -> Result<(), ProvisionError> {
        if let Some(id) = record.volume_id.clone() {
            match self.fly.get_volume(app, &id).await {
                Ok(v) if v.state == "created" || v.state == "hydrating" => return Ok(()),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(cloud("reading the volume", e)),
            }
            record.volume_id = None;
            self.save(user, record).await?;
        }
        progress.report(user, Stage::CreatingVolume, "creating your agent's storage");
        if self.adopt_unattached_volume(user, app, record, None).await? {
            return Ok(());
        }
        let regions = self.regions_from(record.region.as_deref());
        self.create_volume_somewhere(user, app, record, &regions, None, progress).await
    }

    /// Reuses an unattached volume of ours (not `except`), e.g. one a crashed provision made.
    async fn adopt_unattached_volume(
        &self,
        user: &str,
        app: &str,
        record: &mut FlyRecord,
        except: Option<&str>,
    ) -> Result<bool, ProvisionError> {
        let volumes = self.fly.list_volumes(app).await.map_err(|e| cloud("listing volumes", e))?;
        let free = volumes.into_iter().find(|v| {
            v.name == VOLUME_NAME
                && v.attached_machine_id.is_none()
                && matches!(v.state.as_str(), "created" | "hydrating")
                && Some(v.id.as_str()) != except
        });
        let Some(volume) = free else { return Ok(false) };
        record.volume_id = Some(volume.id);
        record.region = Some(volume.region);
        self.save(user, record).await?;
        Ok(true)
    }

    /// Creates (or, with `source`, forks) the volume in the first of `regions` with room.
    async fn create_volume_somewhere(
        &self,
        user: &str,
        app: &str,
        record: &mut FlyRecord,
        regions: &[String],
        source: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<(), ProvisionError> {
        let mut last_refusal = String::from("no region is configured");
        for (i, region) in regions.iter().enumerate() {
            let request = self.volume_request(region);
            let mut attempt = 0;
            loop {
                attempt += 1;
                let created = match source {
                    Some(source) => self.fly.fork_volume(app, source, &request).await,
                    None => self.fly.create_volume(app, &request).await,
                };
                match created {
                    Ok(volume) => {
                        record.region = Some(if volume.region.is_empty() { region.clone() } else { volume.region });
                        record.volume_id = Some(volume.id);
                        return self.save(user, record).await;
                    }
                    Err(e) if no_room(&e) => {
                        last_refusal = e.to_string();
                        if let Some(next) = regions.get(i + 1) {
                            progress.report(
                                user,
                                Stage::CreatingVolume,
                                &format!("no room in {region}; trying {next}"),
                            );
                        }
                        break;
                    }
                    Err(e) if ambiguous(&e) && attempt < CREATE_ATTEMPTS => {
                        tracing::warn!(user_id = user, error = %e, "creating a volume may have failed; looking");
                        self.pause().await;
                        if self.adopt_unattached_volume(user, app, record, source).await? {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(cloud("creating the volume", e)),
                }
            }
        }
        Err(ProvisionError::NoCapacity(last_refusal))
    }

    fn machine_request(
        &self,
        spec: &AgentSpec,
        record: &FlyRecord,
        volume: &str,
        region: &str,
    ) -> CreateMachineRequest {
        // Plain text, readable with any read token (pitfall 12): the model's address and name
        // only; the credential is an app secret.
        let env = BTreeMap::from([
            ("ROOST_LLM_BASE_URL".to_string(), spec.llm.base_url.clone()),
            ("ROOST_LLM_API".to_string(), spec.llm.api.to_string()),
            ("ROOST_LLM_MODEL".to_string(), spec.llm.model.clone()),
            ("ROOST_AGENT_STATE_DIR".to_string(), STATE_DIR.to_string()),
            ("ROOST_AGENT_HOME".to_string(), HOME_DIR.to_string()),
            ("ROOST_AGENT_TMP_DIR".to_string(), TMP_DIR.to_string()),
        ]);
        CreateMachineRequest {
            name: Some(MACHINE_NAME.to_string()),
            // The volume's region: the mount places the machine on the volume's host.
            region: Some(region.to_string()),
            min_secrets_version: record.secrets_version,
            config: MachineConfig {
                image: self.options.image.clone(),
                env,
                guest: Some(self.guest_of(spec).clone()),
                mounts: vec![Mount { volume: volume.to_string(), path: VOLUME_PATH.to_string() }],
                restart: Some(Restart { policy: "on-failure".into() }),
                stop_config: Some(StopConfig { signal: Some("SIGTERM".into()), timeout: Some("30s".into()) }),
                metadata: names::machine_metadata(&spec.user_id, &record.provision_id),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The machine of this provisioning attempt, if Fly has one (the retry guard of §6 item 6).
    async fn find_machine(&self, app: &str, record: &FlyRecord) -> Result<Option<Machine>, ProvisionError> {
        let found = self
            .fly
            .list_machines(app, &by_provision_id(&record.provision_id))
            .await
            .map_err(|e| cloud("listing machines", e))?;
        Ok(found.into_iter().find(|m| !matches!(m.state.as_str(), "destroying" | "destroyed")))
    }

    async fn adopt(&self, user: &str, record: &mut FlyRecord, machine: Machine) -> Result<Machine, ProvisionError> {
        record.machine_id = Some(machine.id.clone());
        // The machine's mount is the truth: a volume 404 right after its create (pitfall 24) may
        // have had the record move on to another volume meanwhile, which is then a leftover.
        if let Some(volume) = mounted_volume(&machine) {
            record.volume_id = Some(volume);
        }
        if !machine.region.is_empty() {
            record.region = Some(machine.region.clone());
        }
        self.save(user, record).await?;
        Ok(machine)
    }

    async fn ensure_machine(
        &self,
        spec: &AgentSpec,
        app: &str,
        record: &mut FlyRecord,
        progress: &dyn Progress,
    ) -> Result<Machine, ProvisionError> {
        let user = spec.user_id.as_str();
        progress.report(user, Stage::CreatingMachine, "creating your agent's machine");
        if let Some(machine) = self.find_machine(app, record).await? {
            return self.adopt(user, record, machine).await;
        }
        for _ in 0..MACHINE_ATTEMPTS {
            let (Some(volume), Some(region)) = (record.volume_id.clone(), record.region.clone()) else {
                self.ensure_volume(user, app, record, progress).await?;
                continue;
            };
            let request = self.machine_request(spec, record, &volume, &region);
            let error = match self.fly.create_machine(app, &request).await {
                Ok(machine) => return self.adopt(user, record, machine).await,
                Err(e) => e,
            };
            if ambiguous(&error) {
                // The create may have been acted on: look before creating again.
                tracing::warn!(user_id = user, error = %error, "creating the machine may have failed; looking");
                self.pause().await;
                if let Some(machine) = self.find_machine(app, record).await? {
                    return self.adopt(user, record, machine).await;
                }
            } else if host_full(&error) {
                // Keep the data: a fork of the volume lands on another host (§6 item 6).
                progress.report(user, Stage::CreatingVolume, "the storage's host is full; moving it to another host");
                let regions = self.regions_from(Some(&region));
                self.create_volume_somewhere(user, app, record, &regions, Some(&volume), progress).await?;
            } else if no_room(&error) {
                let regions: Vec<String> = self.regions_from(Some(&region)).into_iter().skip(1).collect();
                let Some(next) = regions.first() else { return Err(ProvisionError::NoCapacity(error.to_string())) };
                progress.report(user, Stage::CreatingVolume, &format!("no room in {region}; moving to {next}"));
                self.create_volume_somewhere(user, app, record, &regions, Some(&volume), progress).await?;
            } else if matches!(error, FlyError::Conflict(_)) {
                // The name is in use: a machine of ours from an attempt whose record was lost.
                let ours = self
                    .fly
                    .list_machines(app, &MachineFilter::default())
                    .await
                    .map_err(|e| cloud("listing machines", e))?
                    .into_iter()
                    .find(|m| m.name == MACHINE_NAME && m.metadata(names::USER_ID) == Some(user));
                match ours {
                    Some(machine) => return self.adopt(user, record, machine).await,
                    None => return Err(cloud("creating the machine", error)),
                }
            } else if matches!(&error, FlyError::BadRequest(e) if e.message.contains("volume not found")) {
                // A stale volume id (pitfall 7): make a new volume, then the machine.
                record.volume_id = None;
                self.save(user, record).await?;
            } else {
                return Err(cloud("creating the machine", error));
            }
        }
        Err(ProvisionError::Cloud(format!("creating the machine failed {MACHINE_ATTEMPTS} times")))
    }
}

/// The volume a machine mounts, if its config shows one.
pub(super) fn mounted_volume(machine: &Machine) -> Option<String> {
    machine.config.as_ref()?.mounts.first().map(|m| m.volume.clone()).filter(|v| !v.is_empty())
}
