//! Apps, IP assignments and app secrets (research §2.1–2.3).

use std::collections::BTreeMap;

use reqwest::Method;

use super::client::{Call, FlyClient, seg};
use super::error::FlyError;
use super::retry::{self, Idempotency};
use super::types::*;

impl FlyClient {
    /// `POST /v1/apps`. **Not retried** (beyond a connection that was never made): a repeat after
    /// an ambiguous failure answers 422 `name_taken`, which the provider resolves by
    /// [`get_app`](Self::get_app) and an ownership check (§6 item 2). The answer's body differs
    /// between API versions, so nothing is read from it: follow with [`wait_for_app`](Self::wait_for_app).
    pub async fn create_app(&self, request: &CreateAppRequest) -> Result<(), FlyError> {
        let call = Call::new(Method::POST, "/v1/apps".into(), Idempotency::Create, self.timeouts.create).json(request);
        self.send(&call).await.map(drop)
    }

    /// `GET /v1/apps/{app}`. 403 means the name is another org's; 404 that it is free.
    pub async fn get_app(&self, app: &str) -> Result<App, FlyError> {
        self.json(&self.read(format!("/v1/apps/{}", seg(app)))).await
    }

    /// [`get_app`](Self::get_app) right after a create: a 404 there is eventual consistency and
    /// is retried within the retry policy's bounds (fly-go's `WaitForApp`, pitfall 24).
    pub async fn wait_for_app(&self, app: &str) -> Result<App, FlyError> {
        let call = self.read(format!("/v1/apps/{}", seg(app)));
        let response = self.send_classified(&call, retry::classify_after_create).await?;
        super::client::decode(&call, response).await
    }

    /// `GET /v1/apps?org_slug=ORG`: every app of the org, for the orphan sweep. Eventually
    /// consistent like every list: an app created moments ago can be missing.
    pub async fn list_apps(&self, org: &str) -> Result<Vec<App>, FlyError> {
        let list: AppList = self.json(&self.read("/v1/apps".into()).query("org_slug", org)).await?;
        Ok(list.apps)
    }

    /// `DELETE /v1/apps/{app}`: cascades to machines, volumes, IPs, secrets and snapshots.
    /// `Ok(false)` if there was no such app (a repeated teardown is done, §6 item 8).
    pub async fn delete_app(&self, app: &str) -> Result<bool, FlyError> {
        let call =
            Call::new(Method::DELETE, format!("/v1/apps/{}", seg(app)), Idempotency::Idempotent, self.timeouts.call);
        gone_is_done(self.send(&call).await)
    }

    /// `GET /v1/apps/{app}/ip_assignments`.
    pub async fn list_ips(&self, app: &str) -> Result<Vec<IpAssignment>, FlyError> {
        let list: IpAssignments = self.json(&self.read(format!("/v1/apps/{}/ip_assignments", seg(app)))).await?;
        Ok(list.ips)
    }

    /// `POST /v1/apps/{app}/ip_assignments`. Not retried: a repeat allocates a second address,
    /// so the provider lists first and assigns only if none exists (§6 item 4).
    pub async fn assign_ip(&self, app: &str, request: &AssignIpRequest) -> Result<IpAssignment, FlyError> {
        let path = format!("/v1/apps/{}/ip_assignments", seg(app));
        self.json(&Call::new(Method::POST, path, Idempotency::Create, self.timeouts.create).json(request)).await
    }

    /// `DELETE /v1/apps/{app}/ip_assignments/{ip}`; `Ok(false)` if it was not assigned.
    pub async fn release_ip(&self, app: &str, ip: &str) -> Result<bool, FlyError> {
        let path = format!("/v1/apps/{}/ip_assignments/{}", seg(app), seg(ip));
        gone_is_done(self.send(&Call::new(Method::DELETE, path, Idempotency::Idempotent, self.timeouts.call)).await)
    }

    /// `POST /v1/apps/{app}/secrets`: sets each `Some` and removes each `None`. Setting given
    /// values is idempotent, so it is retried. Keep the returned version for the machine create.
    pub async fn set_secrets(
        &self,
        app: &str,
        values: &BTreeMap<String, Option<String>>,
    ) -> Result<SecretsUpdate, FlyError> {
        let path = format!("/v1/apps/{}/secrets", seg(app));
        let body = serde_json::json!({ "values": values });
        self.json(&Call::new(Method::POST, path, Idempotency::Idempotent, self.timeouts.call).json(&body)).await
    }

    /// `GET /v1/apps/{app}/secrets`: names and digests, never values.
    pub async fn list_secrets(&self, app: &str) -> Result<Vec<AppSecret>, FlyError> {
        let list: SecretsList = self.json(&self.read(format!("/v1/apps/{}/secrets", seg(app)))).await?;
        Ok(list.secrets)
    }

    pub(super) fn read(&self, path: String) -> Call {
        Call::new(Method::GET, path, Idempotency::Idempotent, self.timeouts.call)
    }
}

/// A delete whose object is already gone has done its job.
pub(super) fn gone_is_done(result: Result<reqwest::Response, FlyError>) -> Result<bool, FlyError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
