//! Machines: create, read, list by metadata, start/stop/suspend, wait, delete (research §2.5).

use std::time::{Duration, Instant};

use reqwest::Method;

use super::apps::gone_is_done;
use super::client::{Call, FlyClient, decode, seg};
use super::error::FlyError;
use super::retry::{self, Decision, Idempotency};
use super::types::*;

/// How [`FlyClient::wait_for_state`] waits.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Our own overall deadline; each `/wait` call blocks at most 60 s and is repeated until it.
    /// An image pull can take minutes (§6 item 7 suggests 5 min for a first start).
    pub deadline: Duration,
    /// The `instance_id` to wait on; the docs require it for `stopped`.
    pub version: Option<String>,
    /// The machine was created moments ago, so a 404 is eventual consistency and is retried
    /// (flyctl's `justCreated`, pitfall 24).
    pub just_created: bool,
}

impl WaitOptions {
    pub fn within(deadline: Duration) -> Self {
        Self { deadline, version: None, just_created: false }
    }
}

impl FlyClient {
    /// `POST /v1/apps/{app}/machines`. **Never retried** after the request may have reached the
    /// server: create takes no idempotency key, and a 408, 5xx or timeout may hide a machine that
    /// exists (pitfall 9). The provider lists by its `provision_id` metadata
    /// ([`list_machines`](Self::list_machines)) before creating again (§6 item 6).
    pub async fn create_machine(&self, app: &str, request: &CreateMachineRequest) -> Result<Machine, FlyError> {
        let path = format!("/v1/apps/{}/machines", seg(app));
        self.json(&Call::new(Method::POST, path, Idempotency::Create, self.timeouts.create).json(request)).await
    }

    /// `POST /v1/apps/{app}/machines/{id}`: replaces the machine's config (a running machine
    /// restarts on it). **Not retried** after the request may have been acted on: with
    /// `current_version` a repeat would answer 412, so the caller reads the machine again instead.
    pub async fn update_machine(
        &self,
        app: &str,
        id: &str,
        request: &UpdateMachineRequest,
    ) -> Result<Machine, FlyError> {
        let call = Call::new(Method::POST, machine_path(app, id, ""), Idempotency::Create, self.timeouts.create);
        self.json(&call.json(request)).await
    }

    pub async fn get_machine(&self, app: &str, id: &str) -> Result<Machine, FlyError> {
        self.json(&self.read(machine_path(app, id, ""))).await
    }

    /// [`get_machine`](Self::get_machine) right after its create: 404 is retried within the
    /// retry policy's bounds, since a new machine can be invisible briefly (pitfall 24).
    pub async fn get_machine_after_create(&self, app: &str, id: &str) -> Result<Machine, FlyError> {
        let call = self.read(machine_path(app, id, ""));
        let response = self.send_classified(&call, retry::classify_after_create).await?;
        decode(&call, response).await
    }

    /// `GET /v1/apps/{app}/machines?metadata.KEY=VAL…`. Lists are eventually consistent: a machine
    /// created moments ago can be missing, so a duplicate can still slip through (§6 item 6).
    pub async fn list_machines(&self, app: &str, filter: &MachineFilter) -> Result<Vec<Machine>, FlyError> {
        let mut call = self.read(format!("/v1/apps/{}/machines", seg(app)));
        for (key, value) in &filter.metadata {
            call = call.query(&format!("metadata.{key}"), value.as_str());
        }
        if filter.include_deleted {
            call = call.query("include_deleted", "true");
        }
        if let Some(region) = &filter.region {
            call = call.query("region", region.as_str());
        }
        self.json(&call).await
    }

    /// `POST …/{id}/start`. Retried: starting a machine twice leaves it started.
    pub async fn start_machine(&self, app: &str, id: &str) -> Result<StartResponse, FlyError> {
        let call = self.action(machine_path(app, id, "/start"));
        let response = self.send(&call).await?;
        // The spec documents an empty body; the docs show `previous_state` and friends.
        Ok(decode(&call, response).await.unwrap_or_default())
    }

    /// `POST …/{id}/stop`, with an optional signal and timeout (`"30s"`).
    pub async fn stop_machine(&self, app: &str, id: &str, request: &StopRequest) -> Result<(), FlyError> {
        self.send(&self.action(machine_path(app, id, "/stop")).json(request)).await.map(drop)
    }

    /// `POST …/{id}/suspend`. Needs ≤ 2 GB of memory, no swap and no schedule (pitfall 20).
    pub async fn suspend_machine(&self, app: &str, id: &str) -> Result<(), FlyError> {
        self.send(&self.action(machine_path(app, id, "/suspend"))).await.map(drop)
    }

    /// `DELETE …/{id}[?force=true]` (`force` stops a running machine first). `Ok(false)` if there
    /// was no such machine.
    pub async fn delete_machine(&self, app: &str, id: &str, force: bool) -> Result<bool, FlyError> {
        let mut call =
            Call::new(Method::DELETE, machine_path(app, id, ""), Idempotency::Idempotent, self.timeouts.call);
        if force {
            call = call.query("force", "true");
        }
        gone_is_done(self.send(&call).await)
    }

    /// Waits until the machine is in `state`, repeating `GET …/{id}/wait` (which answers 408 when
    /// its own ≤ 60 s deadline passes) until `options.deadline`; then
    /// [`FlyError::WaitTimedOut`]. Transient failures are retried within the retry policy.
    /// `started` means booted, not that the agent inside is ready.
    pub async fn wait_for_state(
        &self,
        app: &str,
        id: &str,
        state: WaitState,
        options: &WaitOptions,
    ) -> Result<WaitResponse, FlyError> {
        let started = Instant::now();
        let mut slept = Duration::ZERO;
        let mut retries = 0;
        let classify = if options.just_created { retry::classify_after_create } else { retry::classify };
        loop {
            let spent = started.elapsed().max(slept);
            let remaining = options.deadline.saturating_sub(spent);
            if remaining.is_zero() {
                let wanted = state.as_str().to_string();
                return Err(FlyError::WaitTimedOut { machine_id: id.to_string(), wanted, waited: spent });
            }
            // Whole seconds, 1 to 60 (fly-go clamps the same way).
            let secs = remaining.as_secs_f64().ceil().clamp(1.0, 60.0) as u64;
            let timeout = Duration::from_secs(secs) + self.timeouts.wait_slack;
            let mut call = Call::new(Method::GET, machine_path(app, id, "/wait"), Idempotency::Idempotent, timeout)
                .query("state", state.as_str())
                .query("timeout", secs.to_string());
            if let Some(version) = &options.version {
                call = call.query("version", version.as_str());
            }
            let error = match self.send_once(&call).await {
                Ok(response) => return decode(&call, response).await,
                // The server's deadline, not ours: ask again.
                Err(FlyError::Timeout(_)) => continue,
                Err(error) => error,
            };
            let Decision::Retry { at_least } = classify(&error, Idempotency::Idempotent) else { return Err(error) };
            retries += 1;
            let delay = self.retry.delay(retries - 1, at_least);
            if retries >= self.retry.max_attempts || spent + delay > options.deadline {
                return Err(error);
            }
            (self.retry.sleep)(delay).await;
            slept += delay;
        }
    }

    fn action(&self, path: String) -> Call {
        Call::new(Method::POST, path, Idempotency::Idempotent, self.timeouts.call)
    }
}

fn machine_path(app: &str, id: &str, tail: &str) -> String {
    format!("/v1/apps/{}/machines/{}{tail}", seg(app), seg(id))
}
