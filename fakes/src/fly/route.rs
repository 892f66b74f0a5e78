//! Which Machines API operation a request is, from its method and path (research §2).

use axum::http::Method;

/// The operations the fake serves; faults can be scripted per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    AppCreate,
    AppList,
    AppGet,
    AppDelete,
    IpList,
    IpAssign,
    IpRelease,
    SecretsList,
    SecretsSet,
    SecretSet,
    SecretDelete,
    VolumeCreate,
    VolumeList,
    VolumeGet,
    VolumeDelete,
    MachineCreate,
    MachineList,
    MachineGet,
    /// `POST /v1/apps/{app}/machines/{id}`: a whole new config (research §2.5 Update).
    MachineUpdate,
    MachineDelete,
    MachineStart,
    MachineStop,
    MachineSuspend,
    MachineWait,
}

/// An operation and the path parameters it names.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub op: Op,
    pub app: String,
    /// The volume or machine id, the secret name or the IP.
    pub id: String,
}

pub(super) fn parse(method: &Method, path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v1/")?;
    let segs: Vec<String> = rest.split('/').map(percent_decode).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    let (op, app, id) = match (m, s.as_slice()) {
        ("POST", ["apps"]) => (Op::AppCreate, "", ""),
        ("GET", ["apps"]) => (Op::AppList, "", ""),
        ("GET", ["apps", a]) => (Op::AppGet, *a, ""),
        ("DELETE", ["apps", a]) => (Op::AppDelete, *a, ""),
        ("GET", ["apps", a, "ip_assignments"]) => (Op::IpList, *a, ""),
        ("POST", ["apps", a, "ip_assignments"]) => (Op::IpAssign, *a, ""),
        ("DELETE", ["apps", a, "ip_assignments", ip]) => (Op::IpRelease, *a, *ip),
        ("GET", ["apps", a, "secrets"]) => (Op::SecretsList, *a, ""),
        ("POST", ["apps", a, "secrets"]) => (Op::SecretsSet, *a, ""),
        ("POST", ["apps", a, "secrets", n]) => (Op::SecretSet, *a, *n),
        ("DELETE", ["apps", a, "secrets", n]) => (Op::SecretDelete, *a, *n),
        ("POST", ["apps", a, "volumes"]) => (Op::VolumeCreate, *a, ""),
        ("GET", ["apps", a, "volumes"]) => (Op::VolumeList, *a, ""),
        ("GET", ["apps", a, "volumes", v]) => (Op::VolumeGet, *a, *v),
        ("DELETE", ["apps", a, "volumes", v]) => (Op::VolumeDelete, *a, *v),
        ("POST", ["apps", a, "machines"]) => (Op::MachineCreate, *a, ""),
        ("GET", ["apps", a, "machines"]) => (Op::MachineList, *a, ""),
        ("GET", ["apps", a, "machines", i]) => (Op::MachineGet, *a, *i),
        ("POST", ["apps", a, "machines", i]) => (Op::MachineUpdate, *a, *i),
        ("DELETE", ["apps", a, "machines", i]) => (Op::MachineDelete, *a, *i),
        ("POST", ["apps", a, "machines", i, "start"]) => (Op::MachineStart, *a, *i),
        ("POST", ["apps", a, "machines", i, "stop"]) => (Op::MachineStop, *a, *i),
        ("POST", ["apps", a, "machines", i, "suspend"]) => (Op::MachineSuspend, *a, *i),
        ("GET", ["apps", a, "machines", i, "wait"]) => (Op::MachineWait, *a, *i),
        _ => return None,
    };
    Some(Route { op, app: app.to_string(), id: id.to_string() })
}

/// `a=1&b=x%2Cy` as pairs, decoded (`+` is a space, as in forms).
pub(super) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
