//! The orphan sweep: apps of this deployment (by name prefix, and with nothing on them that Roost
//! did not make) that no record names, left by a provision whose record was given up or lost, or
//! a destroy cut short. Deleting the app takes its machines, volumes and secrets with it.
//!
//! Apps are listed **before** records: every provision writes the app's name into its record
//! before it creates the app, so an app made after the record list was read cannot be in the app
//! list read before it, and a live provision's app is never swept.

use std::collections::HashSet;

use super::names;
use super::provider::FlyProvider;
use super::reconcile::{Host, Report, Turn, machine_seen};
use super::types::MachineFilter;
use crate::reconcile as rules;

impl FlyProvider {
    pub(super) async fn sweep_orphans(&self, host: &dyn Host, report: &mut Report) {
        let apps = match self.fly.list_apps(&self.options.org).await {
            Ok(apps) => apps,
            Err(e) => return report.errors.push(format!("listing apps: {e}")),
        };
        let prefix = self.options.app_prefix.as_str();
        let candidates: Vec<String> = apps
            .into_iter()
            .map(|a| a.name)
            .filter(|name| name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('-')))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let recorded: HashSet<String> = match self.store.list().await {
            Ok(records) => records.into_iter().filter_map(|r| r.record.app_name).collect(),
            Err(e) => return report.errors.push(format!("listing Fly records: {e}")),
        };
        for app in candidates.into_iter().filter(|a| !recorded.contains(a)) {
            if let Err(e) = self.sweep_app(host, &app, &recorded, report).await {
                report.errors.push(format!("sweeping {app}: {e}"));
            }
        }
    }

    async fn sweep_app(
        &self,
        host: &dyn Host,
        app: &str,
        recorded: &HashSet<String>,
        report: &mut Report,
    ) -> Result<(), super::FlyError> {
        let machines = match self.fly.list_machines(app, &MachineFilter::default()).await {
            Ok(machines) => machines,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let views: Vec<_> = machines.iter().map(machine_seen).collect();
        if !rules::is_orphan_app(app, &self.options.app_prefix, recorded, &views) {
            return Ok(());
        }
        // A user named on the app's machines is taken in turn, so no start of theirs runs while
        // their (old) app goes.
        let users: Vec<String> = machines
            .iter()
            .filter_map(|m| m.metadata(names::USER_ID))
            .map(str::to_string)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut taken = Vec::new();
        for user in &users {
            match host.begin(user).await {
                Turn::Busy => {
                    for (user, turn) in taken {
                        host.end(user, turn).await;
                    }
                    report.busy += 1;
                    return Ok(());
                }
                turn => taken.push((user.as_str(), turn)),
            }
        }
        // Looked up again inside the turns: a record naming it may have been written meanwhile.
        let mut still_orphan = true;
        for (user, _) in &taken {
            if let Ok(Some(record)) = self.store.load(user).await
                && record.app_name.as_deref() == Some(app)
            {
                still_orphan = false;
            }
        }
        let result = if still_orphan {
            tracing::warn!(app, "deleting an orphan app");
            self.fly.delete_app(app).await.map(|_| report.orphan_apps += 1)
        } else {
            Ok(())
        };
        for (user, turn) in taken {
            host.end(user, turn).await;
        }
        result
    }
}
