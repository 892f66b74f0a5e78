//! The credits ledger on a local libSQL file: model calls recorded and debited (one
//! `BEGIN IMMEDIATE` transaction each, `db::credits::record_and_debit`) by many debitors at
//! once, beside the same calls recorded without a debit (`usage_events::insert_once`, what the
//! proxy wrote before the ledger) on a file of its own, in the same run. A tenth of the keys are
//! sent twice, by two debitors, as a retried write would be.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use gateway::db::Db;
use gateway::db::credits::{self, GrantSource, NewGrant};
use gateway::db::usage_events::{self, NewUsageEvent};
use gateway::domain::{UserId, now_secs};
use serde_json::json;

use crate::report::{self, Table};
use crate::stats;

#[derive(clap::Args)]
pub struct Args {
    /// Where the two database files go (a fresh directory).
    #[arg(long)]
    work_dir: PathBuf,
    /// Calls in all (each debitor takes its share).
    #[arg(long, default_value_t = 20_000)]
    debits: usize,
    /// An even number: debitors share keys in pairs.
    #[arg(long, default_value_t = 32)]
    debitors: usize,
    #[arg(long, default_value_t = 64)]
    users: usize,
    #[arg(long)]
    json: PathBuf,
}

#[derive(Clone, Copy, PartialEq)]
enum Write {
    Debit,
    RecordOnly,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.debitors >= 2 && args.debitors.is_multiple_of(2), "--debitors must be even");
    std::fs::create_dir_all(&args.work_dir)?;
    let mut table = Table::new(&["write", "calls", "per second", "p50", "p99", "p99.9", "max"]);
    let mut results = Vec::new();
    for (write, name) in [(Write::Debit, "record + debit"), (Write::RecordOnly, "record only")] {
        let db = fresh_db(&args, name).await?;
        let users = Arc::new(users(&db, args.users).await?);
        let (secs, latencies) = drive(&db, &users, &args, write).await?;
        let summary = stats::summarize(latencies);
        let per_sec = summary.count as f64 / secs;
        let us = |v: f64| format!("{v:.0} µs");
        table.row(vec![
            name.into(),
            summary.count.to_string(),
            format!("{per_sec:.0}/s"),
            us(summary.p50_us),
            us(summary.p99_us),
            us(summary.p999_us),
            us(summary.max_us),
        ]);
        if write == Write::Debit {
            let conn = db.conn()?;
            let broken = credits::invariant_violations(&conn).await?;
            anyhow::ensure!(broken.is_empty(), "the books do not balance after the run: {broken:?}");
        }
        results.push(json!({ "write": name, "per_second": per_sec, "latency": summary.json() }));
    }
    table.print(&format!(
        "{} model calls, {} debitors at once, {} users, on a local libSQL file (10% of keys sent twice)",
        args.debits, args.debitors, args.users
    ));
    report::write_json(
        &args.json,
        &json!({ "bench": "ledger", "machine": report::machine(), "debits": args.debits,
                 "debitors": args.debitors, "users": args.users, "results": results }),
    )?;
    Ok(())
}

async fn fresh_db(args: &Args, name: &str) -> anyhow::Result<Db> {
    let path = args.work_dir.join(format!("{}.db", name.replace([' ', '+'], "")));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let db = Db::open(&path.to_string_lossy(), None).await?;
    gateway::db::migrate::run(&db).await?;
    Ok(db)
}

/// Users with credits enough for every call.
async fn users(db: &Db, count: usize) -> anyhow::Result<Vec<UserId>> {
    let conn = db.conn()?;
    let now = now_secs();
    let mut users = Vec::with_capacity(count);
    for _ in 0..count {
        let user = UserId::generate();
        conn.execute("INSERT INTO users (id, created_at) VALUES (?1, ?2)", (user.as_str(), now)).await?;
        let source_ref = format!("bench:{user}");
        let grant = NewGrant {
            source: GrantSource::Adjustment,
            source_ref: &source_ref,
            amount: 1_000_000_000,
            priority: 50,
            effective_at: 0,
            expires_at: None,
        };
        credits::grant(&conn, &user, &grant, now).await?;
        users.push(user);
    }
    Ok(users)
}

/// Runs every debitor; returns the wall time and each call's latency (ns). Fails unless each
/// distinct key was written exactly once.
async fn drive(db: &Db, users: &Arc<Vec<UserId>>, args: &Args, write: Write) -> anyhow::Result<(f64, Vec<u64>)> {
    let per_debitor = args.debits / args.debitors;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for d in 0..args.debitors {
        let (db, users) = (db.clone(), users.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(per_debitor);
            let mut charged = 0i64;
            for i in 0..per_debitor {
                // Every tenth call, debitors 2k and 2k+1 send the same key: a retried write.
                let owner = if i % 10 == 0 { d & !1 } else { d };
                let key = format!("bench-{owner}-{i}");
                let user = &users[(owner * 7 + i) % users.len()];
                let event = NewUsageEvent {
                    user_id: user,
                    idempotency_key: &key,
                    api: "openai",
                    model: "bench-model",
                    input_tokens: 1_200,
                    output_tokens: 300,
                    upstream_status: 200,
                    complete: true,
                    created_at: now_secs(),
                };
                let began = Instant::now();
                // As the proxy's recorder does: one writer at a time on a local file.
                match write {
                    Write::Debit => {
                        charged += i64::from(credits::record_and_debit_in_turn(&db, &event, 5).await?.is_some())
                    }
                    Write::RecordOnly => {
                        let _turn = db.write_turn().await;
                        charged += i64::from(usage_events::insert_once(&*db.conn()?, &event).await?)
                    }
                }
                latencies.push(began.elapsed().as_nanos() as u64);
            }
            anyhow::Ok((latencies, charged))
        });
    }
    let mut latencies = Vec::with_capacity(args.debits);
    let mut charged = 0;
    while let Some(done) = tasks.join_next().await {
        let (mine, count) = done??;
        latencies.extend(mine);
        charged += count;
    }
    let secs = started.elapsed().as_secs_f64();
    // Duplicates are calls too (answered without a write); charged counts distinct keys.
    let pairs = (args.debitors / 2) as i64;
    let distinct = latencies.len() as i64 - pairs * per_debitor.div_ceil(10) as i64;
    anyhow::ensure!(charged == distinct, "{charged} calls written of {distinct} distinct keys");
    Ok((secs, latencies))
}
