//! Volumes, including forks (research §2.4).

use reqwest::Method;

use super::apps::gone_is_done;
use super::client::{Call, FlyClient, seg};
use super::error::FlyError;
use super::retry::Idempotency;
use super::types::{CreateVolumeRequest, Volume};

impl FlyClient {
    /// `POST /v1/apps/{app}/volumes`. **Not retried**: a repeat makes a second volume, so after an
    /// ambiguous failure the provider lists the app's volumes and reuses an unattached one (§6
    /// item 5).
    pub async fn create_volume(&self, app: &str, request: &CreateVolumeRequest) -> Result<Volume, FlyError> {
        let path = format!("/v1/apps/{}/volumes", seg(app));
        self.json(&Call::new(Method::POST, path, Idempotency::Create, self.timeouts.create).json(request)).await
    }

    /// A new volume holding a copy of `source` (`source_volume_id`), e.g. in another region when
    /// the source's host is full (§6 item 6). It is `hydrating` until the copy is done. Not
    /// retried, like every create.
    pub async fn fork_volume(
        &self,
        app: &str,
        source: &str,
        request: &CreateVolumeRequest,
    ) -> Result<Volume, FlyError> {
        let request = CreateVolumeRequest { source_volume_id: Some(source.to_string()), ..request.clone() };
        self.create_volume(app, &request).await
    }

    /// `GET /v1/apps/{app}/volumes`. Eventually consistent: a volume just created may be missing.
    pub async fn list_volumes(&self, app: &str) -> Result<Vec<Volume>, FlyError> {
        self.json(&self.read(format!("/v1/apps/{}/volumes", seg(app)))).await
    }

    pub async fn get_volume(&self, app: &str, id: &str) -> Result<Volume, FlyError> {
        self.json(&self.read(format!("/v1/apps/{}/volumes/{}", seg(app), seg(id)))).await
    }

    /// `DELETE /v1/apps/{app}/volumes/{id}`; `Ok(false)` if it did not exist. An attached volume
    /// is refused with 412 (destroy the machine first).
    pub async fn delete_volume(&self, app: &str, id: &str) -> Result<bool, FlyError> {
        let path = format!("/v1/apps/{}/volumes/{}", seg(app), seg(id));
        gone_is_done(self.send(&Call::new(Method::DELETE, path, Idempotency::Idempotent, self.timeouts.call)).await)
    }
}
