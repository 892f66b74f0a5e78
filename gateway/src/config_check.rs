//! Checks of `serve` flags that need nothing but the flags. Each problem is one line.

use crate::config::ServeArgs;

const MIN_METRICS_TOKEN_CHARS: usize = 16;

pub fn problems(args: &ServeArgs) -> Vec<String> {
    let mut problems = Vec::new();
    if args.session_idle_hours == 0 || args.session_max_days == 0 {
        problems.push("--session-idle-hours and --session-max-days must be at least 1".into());
    }
    let at_least_one = [
        ("--auth-rate-per-ip", args.auth_rate_per_ip as u64, "would refuse every login"),
        ("--auth-rate-per-email", args.auth_rate_per_email as u64, "would refuse every login"),
        ("--llm-rate-per-user", args.llm_rate_per_user as u64, "would refuse every model call"),
        ("--agent-ready-timeout-secs", args.agents.agent_ready_timeout_secs, "would give no agent time to start"),
        ("--max-connections", args.http.max_connections as u64, "would refuse every connection"),
        ("--max-websockets", args.http.max_websockets as u64, "would refuse every chat connection"),
        ("--header-read-timeout-secs", args.http.header_read_timeout_secs, "would close every connection"),
    ];
    for (flag, value, effect) in at_least_one {
        if value == 0 {
            problems.push(format!("{flag} is 0, which {effect}; it must be at least 1"));
        }
    }
    if args.agents.node_bin.is_some() && args.agents.openclaw_bin.is_none() {
        problems.push(
            "--node-bin is only used to run --openclaw-bin; set both, or neither to use the installed runtime".into(),
        );
    }
    if let Some(token) = &args.http.metrics_token
        && token.expose().chars().count() < MIN_METRICS_TOKEN_CHARS
    {
        problems.push(format!("--metrics-token must be at least {MIN_METRICS_TOKEN_CHARS} characters"));
    }
    if args.public_origin.is_none() && !args.listen.ip().is_loopback() {
        problems.push(format!(
            "--listen {} is not a loopback address, so browsers will not open http://{0} and every write \
             would be refused as cross-origin; set --public-origin (ROOST_PUBLIC_ORIGIN) to the URL users \
             open, e.g. https://roost.example.com",
            args.listen
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::{Cli, Command};

    fn problems_for(flags: &[&str]) -> Vec<String> {
        let argv = [&["roost", "serve"], flags].concat();
        let Command::Serve(args) = Cli::try_parse_from(argv).expect("flags parse").command else { unreachable!() };
        problems(&args)
    }

    #[test]
    fn the_defaults_have_no_problem() {
        assert_eq!(problems_for(&[]), Vec::<String>::new());
    }

    #[test]
    fn values_that_mean_nothing_get_one_line_each() {
        let found = problems_for(&[
            "--auth-rate-per-ip=0",
            "--auth-rate-per-email=0",
            "--llm-rate-per-user=0",
            "--agent-ready-timeout-secs=0",
            "--max-connections=0",
            "--node-bin=/usr/bin/node",
        ]);
        assert_eq!(found.len(), 6, "{found:#?}");
        for flag in ["--auth-rate-per-ip", "--auth-rate-per-email", "--llm-rate-per-user", "--agent-ready-timeout-secs"]
        {
            assert_eq!(found.iter().filter(|l| l.starts_with(&format!("{flag} is 0"))).count(), 1, "{flag}");
        }
        assert!(found.iter().any(|l| l.starts_with("--node-bin") && l.contains("--openclaw-bin")));
        assert!(problems_for(&["--node-bin=/n", "--openclaw-bin=/o.mjs"]).is_empty());
    }

    #[test]
    fn a_public_listen_address_needs_a_public_origin() {
        let found = problems_for(&["--listen", "0.0.0.0:8080"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("--public-origin") && found[0].contains("0.0.0.0:8080"), "{}", found[0]);
        assert!(problems_for(&["--listen", "0.0.0.0:8080", "--public-origin", "https://r.example"]).is_empty());
        assert!(problems_for(&["--listen", "[::1]:8080"]).is_empty());
    }

    #[test]
    fn a_short_metrics_token_is_refused() {
        assert_eq!(problems_for(&["--metrics-token", "short"]).len(), 1);
        assert!(problems_for(&["--metrics-token", "a-long-enough-token"]).is_empty());
    }
}
