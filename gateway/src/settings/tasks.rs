//! The task API's flags → [`TaskSettings`].

use std::time::Duration;

use super::Problems;
use crate::config::TaskArgs;

#[derive(Debug, Clone)]
pub struct TaskSettings {
    pub allow_private_webhooks: bool,
    pub rate_per_token: u32,
    pub concurrency_per_token: u32,
    pub timeout: Duration,
}

pub(super) fn tasks(args: &TaskArgs, problems: &mut Problems) -> TaskSettings {
    if args.task_rate_per_token == 0 {
        problems.push("--task-rate-per-token must be at least 1, or no task could ever be submitted");
    }
    if !(1..=100).contains(&args.task_concurrency_per_token) {
        problems.push("--task-concurrency-per-token must be 1 to 100");
    }
    if !(10..=86_400).contains(&args.task_timeout_secs) {
        problems.push("--task-timeout-secs must be 10 to 86400 (a day)");
    }
    TaskSettings {
        allow_private_webhooks: args.allow_private_webhooks,
        rate_per_token: args.task_rate_per_token,
        concurrency_per_token: args.task_concurrency_per_token,
        timeout: Duration::from_secs(args.task_timeout_secs),
    }
}
