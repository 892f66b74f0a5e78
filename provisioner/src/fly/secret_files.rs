//! Secret files on a Fly agent's volume, written by its sidecar: `PUT /roost/secrets/<name>`
//! (the body is the file) or `DELETE`, with the machine's agent secret. The sidecar answers the
//! path OpenClaw reads the file at.

use std::time::Duration;

use super::ready::AGENT_SECRET_HEADER;
use crate::ProvisionError;

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER: usize = 4096;

/// `ws://host:port/…` → `http://host:port/roost/secrets/<name>`.
fn url(address: &str, name: &str) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(address).ok()?;
    let scheme = if url.scheme() == "wss" { "https" } else { "http" };
    url.set_scheme(scheme).ok()?;
    url.set_path(&format!("{}{name}", roost_agent::SECRETS_PATH));
    url.set_query(None);
    Some(url)
}

pub(super) async fn put(
    http: &reqwest::Client,
    address: &str,
    agent_secret: &str,
    name: &str,
    contents: Option<&[u8]>,
) -> Result<String, ProvisionError> {
    let name = roost_agent::secret_files::check_name(name).map_err(ProvisionError::Start)?;
    let url = url(address, name).ok_or_else(|| ProvisionError::Start(format!("bad agent address {address:?}")))?;
    let request = match contents {
        Some(contents) => http.put(url).body(contents.to_vec()),
        None => http.delete(url),
    };
    let failed =
        |why: String| ProvisionError::Start(format!("the agent's sidecar did not take the secret file: {why}"));
    let res = request
        .header(AGENT_SECRET_HEADER, agent_secret)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| failed(e.without_url().to_string()))?;
    let status = res.status();
    let body = res.bytes().await.map_err(|e| failed(e.without_url().to_string()))?;
    if !status.is_success() {
        return Err(failed(format!("it answered {status}")));
    }
    if body.len() > MAX_ANSWER {
        return Err(failed("its answer is too long".into()));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| failed("its answer is not JSON".into()))?;
    match answer["path"].as_str() {
        Some(path) if path.starts_with('/') && path.ends_with(name) => Ok(path.to_string()),
        _ => Err(failed("its answer names no path".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_is_on_the_sidecars_address() {
        let u = url("ws://1857156b526dd8.vm.roost-abc.internal:8080/", "discord-ab.token").unwrap();
        assert_eq!(u.as_str(), "http://1857156b526dd8.vm.roost-abc.internal:8080/roost/secrets/discord-ab.token");
        assert_eq!(url("wss://h/x?y", "t").unwrap().as_str(), "https://h/roost/secrets/t");
    }
}
