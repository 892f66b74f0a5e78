//! The fake's state: apps with their secrets, IP assignments, volumes and machines, and the
//! app, IP, secret and volume operations (machines are in `machines.rs`).

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use super::faults::Reply;
use super::route::Route;

/// Eventual consistency of one new object: how many more GETs answer 404, and how many more
/// lists leave it out (research pitfall 24, §6 item 6 "Corrosion").
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Lag {
    pub gets: u32,
    pub lists: u32,
}

impl Lag {
    /// True (and one fewer left) while a GET should not see the object yet.
    pub fn hide_from_get(&mut self) -> bool {
        let hide = self.gets > 0;
        self.gets = self.gets.saturating_sub(1);
        hide
    }

    pub fn gets_pending(&self) -> bool {
        self.gets > 0
    }

    pub fn hide_from_list(&mut self) -> bool {
        let hide = self.lists > 0;
        self.lists = self.lists.saturating_sub(1);
        hide
    }
}

pub(super) struct AppRec {
    pub id: String,
    pub name: String,
    pub org: String,
    pub network: String,
    pub secrets: BTreeMap<String, (String, String)>, // name -> (value, updated_at)
    pub secrets_version: u64,
    pub ips: Vec<Value>,
    pub volumes: BTreeMap<String, VolumeRec>,
    pub machines: BTreeMap<String, MachineRec>,
    pub lag: Lag,
}

pub(super) struct VolumeRec {
    pub id: String,
    pub name: String,
    pub region: String,
    pub zone: String,
    pub size_gb: u64,
    pub encrypted: bool,
    pub state: String,
    pub attached: Option<String>,
    pub created_at: String,
    pub lag: Lag,
}

pub(super) struct MachineRec {
    pub id: String,
    pub name: String,
    pub region: String,
    pub state: String,
    /// Created and not yet moved on to `starting` (a launch in progress, not `skip_launch`).
    pub launching: bool,
    pub instance_id: String,
    pub private_ip: String,
    pub config: Value,
    pub created_at: String,
    pub updated_at: String,
    pub lag: Lag,
}

pub(super) struct World {
    pub org: String,
    pub apps: BTreeMap<String, AppRec>,
    /// Names other Fly customers hold: create answers `name_taken`, GET 403.
    pub foreign: HashSet<String>,
    /// Regions where every create answers with a capacity error.
    pub full: HashSet<String>,
    pub lag: Lag,
    pub max_objects: usize,
    pub seq: u64,
}

pub(super) fn rand_hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

/// An RFC 3339 time; the fake's clock is a counter, enough for ordering.
pub(super) fn stamp(seq: u64) -> String {
    format!("2026-01-01T00:{:02}:{:02}Z", (seq / 60) % 60, seq % 60)
}

fn str_field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

impl World {
    pub fn objects(&self) -> usize {
        self.apps.values().map(|a| 1 + a.volumes.len() + a.machines.len()).sum()
    }

    /// Room for one more object? Destroyed machines are forgotten first.
    pub fn make_room(&mut self) -> Result<(), Reply> {
        if self.objects() < self.max_objects {
            return Ok(());
        }
        for app in self.apps.values_mut() {
            app.machines.retain(|_, m| m.state != "destroyed");
        }
        if self.objects() < self.max_objects {
            return Ok(());
        }
        // Research: new orgs may have a machine cap (unverified); the answer here is the fake's.
        Err(Reply::error(422, format!("fake fly: at most {} objects", self.max_objects)))
    }

    pub fn tick(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn app_mut(&mut self, name: &str) -> Result<&mut AppRec, Reply> {
        self.apps.get_mut(name).ok_or_else(|| Reply::error(404, "app not found"))
    }

    // ---- apps ----

    pub fn create_app(&mut self, body: &Value) -> Result<Reply, Reply> {
        let name = str_field(body, "name").or_else(|| str_field(body, "app_name")).unwrap_or("");
        if !valid_app_name(name) {
            return Err(Reply::error(422, "Name must be under 63 chars using numbers, lowercase letters and dashes"));
        }
        if self.apps.contains_key(name) || self.foreign.contains(name) {
            return Err(Reply::error_code(422, "Name has already been taken", "name_taken"));
        }
        if str_field(body, "org_slug") != Some(self.org.as_str()) {
            // Research is silent on an unknown org; the fake answers 404.
            return Err(Reply::error(404, "organization not found"));
        }
        self.make_room()?;
        let network = str_field(body, "network").filter(|n| !n.is_empty()).unwrap_or("default").to_string();
        let id = rand_hex(16);
        let seq = self.tick();
        let app = AppRec {
            id: id.clone(),
            name: name.to_string(),
            org: self.org.clone(),
            network,
            secrets: BTreeMap::new(),
            secrets_version: 0,
            ips: Vec::new(),
            volumes: BTreeMap::new(),
            machines: BTreeMap::new(),
            lag: self.lag,
        };
        self.apps.insert(name.to_string(), app);
        // The docs' example body; the spec says empty and fly-go decodes an App (§2.1).
        Ok(Reply::json(201, json!({"id": id, "created_at": 1_708_631_799_000u64 + seq})))
    }

    pub fn get_app(&mut self, name: &str) -> Result<Reply, Reply> {
        if self.foreign.contains(name) {
            // Research §2.1: 403 when the app is in an org we cannot read. The body is the one
            // fly-go's tests use.
            return Err(Reply::error(403, "unauthorized"));
        }
        let app = self.app_mut(name)?;
        if app.lag.hide_from_get() {
            return Err(Reply::error(404, "app not found"));
        }
        Ok(Reply::json(200, app_json(app)))
    }

    pub fn list_apps(&mut self) -> Reply {
        let apps: Vec<Value> =
            self.apps.values_mut().filter_map(|a| (!a.lag.hide_from_list()).then(|| app_json(a))).collect();
        Reply::json(200, json!({"total_apps": apps.len(), "apps": apps}))
    }

    pub fn delete_app(&mut self, name: &str) -> Result<Reply, Reply> {
        // Cascades: machines, volumes, IPs and secrets go with it (research §2.1).
        self.apps.remove(name).map(|_| Reply::empty(202)).ok_or_else(|| Reply::error(404, "app not found"))
    }

    // ---- IP assignments ----

    pub fn assign_ip(&mut self, app: &str, body: &Value) -> Result<Reply, Reply> {
        let kind = str_field(body, "type").unwrap_or("");
        let network = str_field(body, "network").unwrap_or("");
        // Pitfall 14: this endpoint knows the default network only as "", never "default".
        let known = network.is_empty() || self.apps.values().any(|a| a.network == network && network != "default");
        if !known {
            return Err(Reply::error(400, "network not found"));
        }
        let seq = self.tick();
        let org = self.org.clone();
        let app = self.app_mut(app)?;
        let (ip, net) = match kind {
            "private_v6" => (
                format!("fdaa:0:{:x}:0:1::{:x}", seq % 0xffff, app.ips.len() + 2),
                json!({"name": network, "org_slug": org}),
            ),
            "v6" => (format!("2a09:8280:1::{:x}", seq), Value::Null),
            "v4" | "shared_v4" => (format!("66.241.{}.{}", seq % 250, app.ips.len() + 1), Value::Null),
            _ => return Err(Reply::error(400, format!("invalid ip type {kind:?}"))),
        };
        let assigned = json!({"ip": ip, "region": "global", "shared": kind == "shared_v4", "created_at": stamp(seq),
                              "service_name": str_field(body, "service_name").unwrap_or(""), "network": net});
        app.ips.push(assigned.clone());
        Ok(Reply::json(200, assigned))
    }

    pub fn list_ips(&mut self, app: &str) -> Result<Reply, Reply> {
        let app = self.app_mut(app)?;
        Ok(Reply::json(200, json!({"ips": app.ips})))
    }

    pub fn release_ip(&mut self, app: &str, ip: &str) -> Result<Reply, Reply> {
        let app = self.app_mut(app)?;
        let before = app.ips.len();
        app.ips.retain(|a| a["ip"] != ip);
        if app.ips.len() == before { Err(Reply::error(404, "ip not found")) } else { Ok(Reply::empty(204)) }
    }

    // ---- secrets ----

    pub fn set_secrets(&mut self, app: &str, body: &Value) -> Result<Reply, Reply> {
        let Some(values) = body.get("values").and_then(Value::as_object) else {
            return Err(Reply::error(400, "values is required"));
        };
        let seq = self.tick();
        let app = self.app_mut(app)?;
        for (name, value) in values {
            match value.as_str() {
                Some(v) => {
                    app.secrets.insert(name.clone(), (v.to_string(), stamp(seq)));
                }
                None => {
                    app.secrets.remove(name);
                }
            }
        }
        app.secrets_version += 1;
        Ok(Reply::json(200, json!({"secrets": secrets_json(app, false), "version": app.secrets_version})))
    }

    pub fn set_secret(&mut self, app: &str, name: &str, body: &Value) -> Result<Reply, Reply> {
        let value = str_field(body, "value").ok_or_else(|| Reply::error(400, "value is required"))?.to_string();
        let seq = self.tick();
        let app = self.app_mut(app)?;
        app.secrets.insert(name.to_string(), (value.clone(), stamp(seq)));
        app.secrets_version += 1;
        Ok(Reply::json(
            201,
            json!({"name": name, "digest": digest(&value), "created_at": stamp(seq), "updated_at": stamp(seq),
                   "version": app.secrets_version}),
        ))
    }

    pub fn list_secrets(&mut self, app: &str, show: bool) -> Result<Reply, Reply> {
        let app = self.app_mut(app)?;
        Ok(Reply::json(200, json!({"secrets": secrets_json(app, show)})))
    }

    pub fn delete_secret(&mut self, app: &str, name: &str) -> Result<Reply, Reply> {
        let app = self.app_mut(app)?;
        app.secrets.remove(name).ok_or_else(|| Reply::error(404, "secret not found"))?;
        app.secrets_version += 1;
        Ok(Reply::json(200, json!({"version": app.secrets_version})))
    }

    // ---- volumes ----

    pub fn create_volume(&mut self, app: &str, body: &Value) -> Result<Reply, Reply> {
        let region = str_field(body, "region").unwrap_or("").to_string();
        let name = str_field(body, "name").unwrap_or("").to_string();
        if region.is_empty() || name.is_empty() {
            return Err(Reply::error(400, "name and region are required")); // wording: the fake's
        }
        if self.full.contains(&region) {
            return Err(Reply::capacity(&region));
        }
        self.app_mut(app)?;
        self.make_room()?;
        let seq = self.tick();
        let lag = self.lag;
        let app = self.app_mut(app)?;
        let source = str_field(body, "source_volume_id");
        if let Some(source) = source
            && !app.volumes.contains_key(source)
        {
            // Research is silent on a fork of an unknown volume; 400 as for a stale mount.
            return Err(Reply::error(400, "source volume not found"));
        }
        let volume = VolumeRec {
            id: format!("vol_{}", rand_hex(16)),
            name,
            region,
            zone: rand_hex(4),
            size_gb: body.get("size_gb").and_then(Value::as_u64).unwrap_or(3),
            encrypted: body.get("encrypted").and_then(Value::as_bool).unwrap_or(true),
            // A fork fills from its source first (research: "hydrating (forks/restores)").
            state: if source.is_some() { "hydrating" } else { "created" }.to_string(),
            attached: None,
            created_at: stamp(seq),
            lag,
        };
        let reply = Reply::json(200, volume_json(&volume));
        app.volumes.insert(volume.id.clone(), volume);
        Ok(reply)
    }

    pub fn list_volumes(&mut self, app: &str) -> Result<Reply, Reply> {
        let app = self.app_mut(app)?;
        let list: Vec<Value> =
            app.volumes.values_mut().filter_map(|v| (!v.lag.hide_from_list()).then(|| volume_json(v))).collect();
        Ok(Reply::json(200, Value::Array(list)))
    }

    pub fn get_volume(&mut self, app: &str, id: &str) -> Result<Reply, Reply> {
        let app = self.app_mut(app)?;
        match app.volumes.get_mut(id) {
            Some(v) if !v.lag.gets_pending() => Ok(Reply::json(200, volume_json(v))),
            Some(v) => {
                v.lag.hide_from_get();
                Err(Reply::error(404, "volume not found"))
            }
            None => Err(Reply::error(404, "volume not found")),
        }
    }

    pub fn delete_volume(&mut self, app: &str, id: &str) -> Result<Reply, Reply> {
        let app = self.app_mut(app)?;
        let volume = app.volumes.get(id).ok_or_else(|| Reply::error(404, "volume not found"))?;
        if let Some(machine) = &volume.attached {
            return Err(Reply::error(
                412,
                format!("failed_precondition: volume is currently bound to machine: {machine}"),
            ));
        }
        let mut volume = app.volumes.remove(id).expect("checked above");
        volume.state = "destroyed".to_string();
        Ok(Reply::json(200, volume_json(&volume)))
    }
}

pub(super) fn valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

fn digest(value: &str) -> String {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn secrets_json(app: &AppRec, show: bool) -> Vec<Value> {
    app.secrets
        .iter()
        .map(|(name, (value, at))| {
            let mut s = json!({"name": name, "digest": digest(value), "created_at": at, "updated_at": at});
            if show {
                s["value"] = json!(value);
            }
            s
        })
        .collect()
}

pub(super) fn app_json(app: &AppRec) -> Value {
    let live = app.machines.values().filter(|m| m.state != "destroyed");
    let deployed = app.machines.values().any(|m| m.state == "started");
    json!({"id": app.id, "name": app.name, "status": if deployed { "deployed" } else { "pending" },
           "network": app.network, "machine_count": live.count(), "volume_count": app.volumes.len(),
           "organization": {"name": app.org, "slug": app.org}})
}

pub(super) fn volume_json(v: &VolumeRec) -> Value {
    json!({"id": v.id, "name": v.name, "state": v.state, "size_gb": v.size_gb, "region": v.region, "zone": v.zone,
           "encrypted": v.encrypted, "attached_machine_id": v.attached, "attached_alloc_id": v.attached.as_ref().map(|_| rand_hex(8)),
           "created_at": v.created_at, "blocks": 0, "block_size": 0, "blocks_free": 0, "blocks_avail": 0, "fstype": "ext4",
           "snapshot_retention": 5, "auto_backup_enabled": true, "host_dedication_key": ""})
}

/// Route parameters are strings; the helpers above take them as `&str`.
pub(super) fn ids(route: &Route) -> (&str, &str) {
    (route.app.as_str(), route.id.as_str())
}
