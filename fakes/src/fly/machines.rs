//! Machines and their state machine (research §3):
//! created → starting → started → stopping → stopped, started → suspending → suspended,
//! any → destroying → destroyed. Transient states move on one step per transition tick.

use serde_json::{Value, json};

use super::faults::Reply;
use super::world::{MachineRec, World, rand_hex, stamp};

/// Persistent states, which `/wait?state=settled` accepts.
const SETTLED: [&str; 5] = ["created", "started", "stopped", "suspended", "failed"];

impl World {
    pub fn create_machine(&mut self, app_name: &str, body: &Value) -> Result<Reply, Reply> {
        let config = body.get("config").cloned().unwrap_or(Value::Null);
        if config.get("image").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(Reply::error(400, "invalid config: image is required")); // wording: the fake's
        }
        let name = body.get("name").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| rand_hex(8));
        let lag = self.lag;
        let full = self.full.clone();
        self.app_mut(app_name)?;
        self.make_room()?;
        let seq = self.tick();
        let app = self.app_mut(app_name)?;
        if app.machines.values().any(|m| m.name == name && m.state != "destroyed") {
            // Research §6 item 6: machine names are unique per app; a duplicate gets a 409.
            return Err(Reply::error(409, format!("machine name {name:?} is already in use"))); // wording: the fake's
        }
        let wanted = body.get("min_secrets_version").and_then(Value::as_u64).unwrap_or(0);
        if wanted > app.secrets_version {
            return Err(Reply::error(
                412,
                format!("failed_precondition: min_secrets_version {wanted} is newer than {}", app.secrets_version),
            ));
        }
        let mut region = body.get("region").and_then(Value::as_str).unwrap_or("").to_string();
        let mounts: Vec<String> = config["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("volume").and_then(Value::as_str).map(str::to_string))
            .collect();
        for id in &mounts {
            // Research §4 / pitfall 7: an unknown (stale) volume id is a 400 on create.
            let volume = app.volumes.get(id).ok_or_else(|| Reply::error(400, "volume not found"))?;
            if let Some(other) = &volume.attached {
                return Err(Reply::error(
                    412,
                    format!("failed_precondition: volume is currently bound to machine: {other}"),
                ));
            }
            if region.is_empty() {
                region = volume.region.clone();
            } else if region != volume.region {
                // The mount places the machine on the volume's host (pitfall 4); a machine asked
                // for elsewhere cannot have it. Research quotes no body for this case.
                return Err(Reply::error(
                    412,
                    format!("failed_precondition: volume {id} is in region {}, not {region}", volume.region),
                ));
            }
        }
        if region.is_empty() {
            region = "iad".to_string();
        }
        if full.contains(&region) {
            return Err(Reply::capacity(&region));
        }
        let id = rand_hex(14);
        for volume in &mounts {
            if let Some(v) = app.volumes.get_mut(volume) {
                v.attached = Some(id.clone());
            }
        }
        let skip_launch = body.get("skip_launch").and_then(Value::as_bool).unwrap_or(false);
        let machine = MachineRec {
            id: id.clone(),
            name,
            region,
            state: "created".to_string(),
            launching: !skip_launch,
            instance_id: instance_id(),
            private_ip: format!("fdaa:0:1:a7b:{:x}:{}:{}:2", seq, &id[..4], &id[4..8]),
            config,
            created_at: stamp(seq),
            updated_at: stamp(seq),
            lag,
        };
        let reply = Reply::json(200, machine_json(&machine));
        app.machines.insert(id, machine);
        Ok(reply)
    }

    pub fn list_machines(&mut self, app: &str, query: &[(String, String)]) -> Result<Reply, Reply> {
        let app = self.app_mut(app)?;
        let include_deleted = query.iter().any(|(k, v)| k == "include_deleted" && v == "true");
        let wanted_states: Vec<&str> =
            query.iter().filter(|(k, _)| k == "state").flat_map(|(_, v)| v.split(',')).collect();
        let list: Vec<Value> = app
            .machines
            .values_mut()
            .filter(|m| include_deleted || m.state != "destroyed")
            .filter(|m| wanted_states.is_empty() || wanted_states.contains(&m.state.as_str()))
            .filter(|m| {
                query.iter().all(|(k, v)| match k.strip_prefix("metadata.") {
                    Some(key) => m.config["metadata"][key].as_str() == Some(v.as_str()),
                    None if k == "region" => m.region == *v,
                    None => true,
                })
            })
            .filter_map(|m| (!m.lag.hide_from_list()).then(|| machine_json(m)))
            .collect();
        Ok(Reply::json(200, Value::Array(list)))
    }

    /// GET of a machine. A destroyed one is still answered, with its state (research is silent
    /// on how long Fly keeps them; this fake keeps them until it needs the room).
    pub fn machine_mut(&mut self, app: &str, id: &str) -> Result<&mut MachineRec, Reply> {
        let app = self.app_mut(app)?;
        match app.machines.get_mut(id) {
            Some(m) => {
                if m.lag.hide_from_get() {
                    Err(Reply::error(404, "machine not found"))
                } else {
                    Ok(m)
                }
            }
            None => Err(Reply::error(404, "machine not found")),
        }
    }

    /// `POST …/{id}` with a whole config (research §2.5 Update: no partial merge, `name` and
    /// `region` immutable, the volume unchangeable). `current_version`, when given, must be the
    /// machine's `instance_id` (412 otherwise). Every update is a new version; a machine that runs,
    /// or any one without `skip_launch`, restarts on it.
    pub fn update_machine(&mut self, app: &str, id: &str, body: &Value) -> Result<Reply, Reply> {
        let config = body.get("config").cloned().unwrap_or(Value::Null);
        if config.get("image").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(Reply::error(400, "invalid config: image is required")); // wording: the fake's
        }
        let seq = self.tick();
        let m = self.machine_mut(app, id)?;
        if let Some(version) = body.get("current_version").and_then(Value::as_str)
            && version != m.instance_id
        {
            return Err(Reply::error(
                412,
                format!("failed_precondition: current_version {version} is not the machine's {}", m.instance_id),
            ));
        }
        let volumes = |c: &Value| -> Vec<String> {
            c["mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["volume"].as_str().map(str::to_string))
                .collect()
        };
        if volumes(&config) != volumes(&m.config) {
            // Research §2.5: the volume cannot be changed by update. The wording is the fake's.
            return Err(Reply::error(400, "invalid config: a machine's volume cannot be changed by update"));
        }
        match m.state.as_str() {
            "destroying" | "destroyed" => return Err(Reply::error(404, "machine not found")),
            "replacing" | "updating" => {
                return Err(Reply::error(412, "failed_precondition: machine getting replaced, refusing to update"));
            }
            _ => {}
        }
        let skip_launch = body.get("skip_launch").and_then(Value::as_bool).unwrap_or(false);
        m.config = config;
        m.instance_id = instance_id();
        m.updated_at = stamp(seq);
        m.launching = false;
        if m.state == "started" || m.state == "starting" || !skip_launch {
            m.state = "starting".to_string();
        } else if m.state == "suspended" {
            // A new version has no memory snapshot to resume from.
            m.state = "stopped".to_string();
        }
        Ok(Reply::json(200, machine_json(m)))
    }

    pub fn start_machine(&mut self, app: &str, id: &str) -> Result<Reply, Reply> {
        let m = self.machine_mut(app, id)?;
        let previous = m.state.clone();
        match previous.as_str() {
            // Research §3: the launch is still going on.
            "created" if m.launching => {
                return Err(Reply::error(
                    412,
                    "failed_precondition: unable to start machine from current state: 'created'",
                ));
            }
            "created" | "stopped" | "suspended" | "failed" => m.state = "starting".to_string(),
            // Already on its way or there: nothing to do (research is silent; the fake says 200).
            "starting" | "started" => {}
            other => {
                return Err(Reply::error(
                    412,
                    format!("failed_precondition: unable to start machine from current state: '{other}'"),
                ));
            }
        }
        Ok(Reply::json(200, json!({"previous_state": previous, "migrated": false, "new_host": ""})))
    }

    pub fn stop_machine(&mut self, app: &str, id: &str) -> Result<Reply, Reply> {
        let m = self.machine_mut(app, id)?;
        match m.state.as_str() {
            // Stopping a suspended machine discards its snapshot (research §3).
            "started" | "starting" | "suspended" | "suspending" => m.state = "stopping".to_string(),
            "created" => {
                m.launching = false;
                m.state = "stopped".to_string();
            }
            "stopping" | "stopped" | "failed" => {}
            other => return Err(Reply::error(412, format!("failed_precondition: machine is {other}"))),
        }
        Ok(Reply::json(200, json!({"ok": true})))
    }

    pub fn suspend_machine(&mut self, app: &str, id: &str) -> Result<Reply, Reply> {
        let m = self.machine_mut(app, id)?;
        match m.state.as_str() {
            "started" => m.state = "suspending".to_string(),
            "suspending" | "suspended" => {}
            other => {
                return Err(Reply::error(
                    412,
                    format!("failed_precondition: cannot suspend a machine that is {other}"),
                ));
            }
        }
        Ok(Reply::json(200, json!({"ok": true})))
    }

    pub fn delete_machine(&mut self, app: &str, id: &str, force: bool) -> Result<Reply, Reply> {
        let m = self.machine_mut(app, id)?;
        match m.state.as_str() {
            "destroying" | "destroyed" => return Err(Reply::error(404, "machine not found")),
            "created" | "stopped" | "suspended" | "failed" => {}
            // Research §4: deleting a busy machine is a 409 (without `force`).
            _ if !force => return Err(Reply::error(409, "machine is still running; stop it or use force")),
            _ => {}
        }
        m.launching = false;
        m.state = "destroying".to_string();
        Ok(Reply::json(200, json!({"ok": true})))
    }

    /// One transition step for every machine (and every filling volume).
    pub fn advance(&mut self) -> bool {
        let mut changed = false;
        let seq = self.tick();
        for app in self.apps.values_mut() {
            let mut freed = Vec::new();
            for m in app.machines.values_mut() {
                let next = match m.state.as_str() {
                    "created" if m.launching => "starting",
                    "starting" => "started",
                    "stopping" => "stopped",
                    "suspending" => "suspended",
                    "destroying" => "destroyed",
                    _ => continue,
                };
                m.launching = false;
                m.state = next.to_string();
                m.updated_at = stamp(seq);
                if next == "destroyed" {
                    freed.push(m.id.clone());
                }
                changed = true;
            }
            for v in app.volumes.values_mut() {
                if v.attached.as_ref().is_some_and(|id| freed.contains(id)) {
                    v.attached = None;
                }
                if v.state == "hydrating" {
                    v.state = "created".to_string();
                    changed = true;
                }
            }
        }
        changed
    }
}

/// Whether `state` satisfies a `/wait` for any of `wanted`.
pub(super) fn reached(state: &str, wanted: &[String]) -> bool {
    wanted.iter().any(|w| w == state || (w == "settled" && SETTLED.contains(&state)))
}

/// A 26-character version id, like a ULID.
fn instance_id() -> String {
    rand_hex(26).to_uppercase()
}

pub(super) fn machine_json(m: &MachineRec) -> Value {
    json!({"id": m.id, "name": m.name, "state": m.state, "region": m.region, "instance_id": m.instance_id,
           "version": m.instance_id, "private_ip": m.private_ip, "config": m.config, "host_status": "ok",
           "image_ref": {"registry": "", "repository": "", "tag": "", "digest": "", "labels": {}},
           "created_at": m.created_at, "updated_at": m.updated_at,
           "events": [{"type": "launch", "status": "created", "source": "user", "timestamp": 1_699_408_350_300u64}]})
}
