//! Resident memory of agents, sampled from `/proc`: one pass over the process table serves
//! every agent, so sampling costs the same however many agents run.

use std::collections::{HashMap, HashSet};

/// Parents followed up from a process to find its agent; deeper trees are not attributed.
const MAX_DEPTH: usize = 64;

struct Proc {
    ppid: u32,
    pgrp: u32,
    rss_pages: u64,
}

/// Resident bytes of each agent, keyed by its group leader's pid: every process in the
/// leader's group, or descended from it (a tool that called `setsid` still counts). Shared
/// pages are counted in every process that maps them, so this is an upper bound. Blocking:
/// call it off the async workers.
pub fn resident_bytes(leaders: &HashSet<u32>) -> HashMap<u32, u64> {
    let mut table = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return HashMap::new() };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // Processes may exit between listing and reading: skip them.
        if let Some(proc) = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(parse_stat) {
            table.insert(pid, proc);
        }
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let mut totals = HashMap::new();
    for (&pid, proc) in &table {
        if let Some(leader) = owner(pid, &table, leaders) {
            *totals.entry(leader).or_insert(0) += proc.rss_pages * page;
        }
    }
    totals
}

/// The agent a process belongs to, through its group or its ancestors.
fn owner(mut pid: u32, table: &HashMap<u32, Proc>, leaders: &HashSet<u32>) -> Option<u32> {
    for _ in 0..MAX_DEPTH {
        if leaders.contains(&pid) {
            return Some(pid);
        }
        let proc = table.get(&pid)?;
        if leaders.contains(&proc.pgrp) {
            return Some(proc.pgrp);
        }
        if proc.ppid <= 1 {
            return None;
        }
        pid = proc.ppid;
    }
    None
}

/// `/proc/<pid>/stat`: the command name may hold spaces and parentheses, so fields are counted
/// from its last `)`. After it come state (field 3), ppid (4), pgrp (5) … rss (24).
fn parse_stat(text: &str) -> Option<Proc> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Proc {
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        rss_pages: fields.get(21)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_past_odd_command_names() {
        let line = "4242 (node (worker) x) S 4200 4200 4200 0 -1 4194560 1 0 0 0 5 3 0 0 20 0 11 0 123 987654 2500 18446744073709551615";
        let proc = parse_stat(line).unwrap();
        assert_eq!((proc.ppid, proc.pgrp, proc.rss_pages), (4200, 4200, 2500));
    }

    #[test]
    fn this_test_process_is_counted_as_its_own_agent() {
        let me = std::process::id();
        let totals = resident_bytes(&HashSet::from([me]));
        let bytes = totals.get(&me).copied().unwrap_or(0);
        assert!(bytes > 1024 * 1024, "{bytes}");
    }
}
