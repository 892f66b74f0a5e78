//! Where a task webhook may go. A URL is checked when the task is submitted and again before
//! every delivery: its host is resolved, every address must be public, and the request then
//! goes to exactly the addresses that were checked (no second lookup a rebinding DNS server
//! could answer differently). Redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::Url;

pub const MAX_URL_LEN: usize = 2048;
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A checked webhook target: the URL and the addresses its host resolved to, all allowed.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// How host names become addresses; tests replace the system resolver.
#[derive(Clone, Debug, Default)]
pub enum Resolver {
    #[default]
    System,
    /// Every name resolves to these (a test's DNS).
    Fixed(Vec<IpAddr>),
}

impl Resolver {
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        match self {
            Self::Fixed(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            Self::System => {
                let lookup = tokio::net::lookup_host((host, port));
                match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                    Ok(Ok(addrs)) => Ok(addrs.collect()),
                    _ => Err(Refused(format!("The webhook host {host} could not be resolved."))),
                }
            }
        }
    }
}

/// The URL's shape alone: http(s), a host, no credentials, not too long.
pub fn parse(raw: &str) -> Result<Url, Refused> {
    let refuse = |why: &str| Err(Refused(why.to_string()));
    if raw.len() > MAX_URL_LEN {
        return refuse("A webhook URL may be at most 2048 characters.");
    }
    let Ok(url) = Url::parse(raw.trim()) else { return refuse("The webhook URL is not a valid URL.") };
    if !matches!(url.scheme(), "http" | "https") {
        return refuse("A webhook URL must start with https:// or http://.");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("A webhook URL may not carry a user name or password.");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return refuse("A webhook URL needs a host.");
    }
    Ok(url)
}

/// Parses and resolves the URL, refusing internal addresses unless `allow_private`.
pub async fn check(raw: &str, allow_private: bool, resolver: &Resolver) -> Result<Target, Refused> {
    let url = parse(raw)?;
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => return Err(Refused("A webhook URL needs a host.".into())),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = resolver.resolve(&host, port).await?;
    if addrs.is_empty() {
        return Err(Refused(format!("The webhook host {host} has no addresses.")));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| blocked(a.ip()).is_some()) {
        let class = blocked(bad.ip()).unwrap_or("internal");
        return Err(Refused(format!("Webhooks may not go to {class} addresses, and {host} is one ({}).", bad.ip())));
    }
    Ok(Target { url, host, addrs })
}

/// The class of address a webhook must not reach, if `ip` is one.
pub fn blocked(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if a == 0 => "unspecified",
        _ if ip.is_private() => "private",
        // 169.254.169.254 (cloud metadata) is in here.
        _ if ip.is_link_local() => "link-local",
        _ if a == 100 && (64..128).contains(&b) => "shared (CGNAT)",
        _ if a == 192 && b == 0 && c == 0 => "IETF protocol",
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking",
        _ if ip.is_documentation() => "documentation",
        _ if ip.is_multicast() => "multicast",
        _ if a >= 240 => "reserved",
        _ => return None,
    })
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return blocked_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        return blocked_v4(Ipv4Addr::from((u32::from(seg[6]) << 16) | u32::from(seg[7])));
    }
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        // fc00::/7, which holds fd00:ec2::254 (AWS metadata over IPv6).
        _ if (seg[0] & 0xfe00) == 0xfc00 => "unique local",
        _ if (seg[0] & 0xffc0) == 0xfe80 => "link-local",
        _ if (seg[0] & 0xffc0) == 0xfec0 => "site-local",
        _ if ip.is_multicast() => "multicast",
        // IPv4-compatible (::a.b.c.d), deprecated, and the discard prefix.
        _ if seg[..6] == [0, 0, 0, 0, 0, 0] => "IPv4-compatible",
        _ if seg[0] == 0x100 && seg[1..4] == [0, 0, 0] => "discard",
        _ if seg[0] == 0x2001 && seg[1] == 0xdb8 => "documentation",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_internal_class_is_blocked_and_public_addresses_are_not() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.1.1",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
        ] {
            assert!(blocked(ip.parse().unwrap()).is_some(), "{ip} must be blocked");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "172.32.0.1", "2606:4700:4700::1111", "64:ff9b::808:808"] {
            assert_eq!(blocked(ip.parse().unwrap()), None, "{ip} is public");
        }
    }

    #[tokio::test]
    async fn a_name_is_checked_by_what_it_resolves_to() {
        let to_loopback = Resolver::Fixed(vec!["127.0.0.1".parse().unwrap()]);
        let refused = check("https://rebind.example/hook", false, &to_loopback).await.unwrap_err();
        assert!(refused.0.contains("loopback"), "{refused:?}");
        // One bad address among good ones is enough to refuse.
        let mixed = Resolver::Fixed(vec!["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()]);
        assert!(check("https://mixed.example/hook", false, &mixed).await.is_err());
        let public = Resolver::Fixed(vec!["8.8.8.8".parse().unwrap()]);
        let target = check("https://ok.example:8443/hook", false, &public).await.unwrap();
        assert_eq!(target.addrs, vec!["8.8.8.8:8443".parse().unwrap()]);
        assert!(check("https://rebind.example/hook", true, &to_loopback).await.is_ok(), "the operator allowed it");
        // The system resolver: `localhost` is loopback.
        assert!(check("http://localhost:9/hook", false, &Resolver::System).await.is_err());
    }

    #[test]
    fn only_plain_http_urls_with_a_host_are_accepted() {
        assert!(parse("ftp://example.com/x").is_err());
        assert!(parse("https://user:pw@example.com/x").is_err());
        assert!(parse("not a url").is_err());
        assert!(parse(&format!("https://example.com/{}", "a".repeat(3000))).is_err());
        assert!(parse("https://example.com/hook?x=1").is_ok());
    }
}
