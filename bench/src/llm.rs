//! LLM proxy overhead: the same streaming chat completion straight to the fake provider and
//! through Roost's `/llm/openai/v1` proxy (credential check, DB user lookup, metering), one
//! request at a time, alternating paths. Time to first token is timed to the first chunk with
//! content; the time per chunk is the spread of the chunks' arrival divided by their number.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use gateway::domain::UserId;
use gateway::secret::ServerSecret;
use serde_json::json;

use crate::conn;
use crate::report::{self, Table, fmt_us};
use crate::stats::{self, Summary};

pub const PROVIDER_KEY: &str = "bench-key";

#[derive(clap::Args)]
pub struct Args {
    /// The fake provider's API base, `http://127.0.0.1:PORT/v1`.
    #[arg(long)]
    direct: String,
    /// Roost, `http://127.0.0.1:PORT`.
    #[arg(long)]
    roost: String,
    /// Roost's `--secret-key`, to derive the user's `rak_` credential.
    #[arg(long)]
    secret_key: String,
    #[arg(long)]
    users: PathBuf,
    #[arg(long, default_value_t = 300)]
    requests: usize,
    #[arg(long)]
    json: PathBuf,
}

struct Path {
    name: &'static str,
    url: String,
    key: String,
    ttft: Vec<u64>,
    per_chunk: Vec<u64>,
    total: Vec<u64>,
    chunks: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let user = conn::read_users(&args.users)?.into_iter().next().context("no seeded user")?;
    let secret: [u8; 32] =
        hex::decode(&args.secret_key)?.try_into().map_err(|_| anyhow::anyhow!("secret is 32 bytes"))?;
    let user_id = UserId::parse(&user.id).map_err(|_| anyhow::anyhow!("bad user id"))?;
    let credential = gateway::agent_credentials::llm_credential(&ServerSecret::from_bytes(secret), &user_id);
    let mut paths = [
        Path::new("direct", format!("{}/chat/completions", args.direct), PROVIDER_KEY.into()),
        Path::new("roost", format!("{}/llm/openai/v1/chat/completions", args.roost), credential),
    ];
    // One pooled keep-alive client per path, as an agent has.
    let clients = [reqwest::Client::new(), reqwest::Client::new()];
    for round in 0..args.requests + 5 {
        for (path, client) in paths.iter_mut().zip(&clients) {
            let timing = one_call(client, &path.url, &path.key).await.with_context(|| path.name)?;
            if round >= 5 {
                path.ttft.push(timing.ttft);
                path.per_chunk.push(timing.per_chunk);
                path.total.push(timing.total);
                path.chunks = timing.chunks;
            }
        }
    }
    let summaries: Vec<(Summary, Summary, Summary)> = paths
        .iter()
        .map(|p| {
            (stats::summarize(p.ttft.clone()), stats::summarize(p.per_chunk.clone()), stats::summarize(p.total.clone()))
        })
        .collect();
    let (d, r) = (&summaries[0], &summaries[1]);
    let mut table =
        Table::new(&["path", "requests", "chunks", "TTFT p50", "TTFT p99", "per chunk (mean)", "whole answer p50"]);
    for (p, s) in paths.iter().zip(&summaries) {
        table.row(vec![
            p.name.into(),
            p.ttft.len().to_string(),
            p.chunks.to_string(),
            fmt_us(s.0.p50_us),
            fmt_us(s.0.p99_us),
            format!("{:.1} µs", s.1.mean_us),
            fmt_us(s.2.p50_us),
        ]);
    }
    let added_ttft_p50 = r.0.p50_us - d.0.p50_us;
    let added_ttft_p99 = r.0.p99_us - d.0.p99_us;
    let added_per_chunk = r.1.mean_us - d.1.mean_us;
    table.row(vec![
        "added".into(),
        String::new(),
        String::new(),
        fmt_us(added_ttft_p50),
        fmt_us(added_ttft_p99),
        format!("{added_per_chunk:.1} µs"),
        fmt_us(r.2.p50_us - d.2.p50_us),
    ]);
    table.print("LLM proxy: streaming chat completions, one at a time, direct vs through Roost");
    report::write_json(
        &args.json,
        &json!({
            "bench": "llm", "machine": report::machine(), "requests": args.requests, "chunks": paths[0].chunks,
            "direct": { "ttft": d.0.json(), "per_chunk": d.1.json(), "total": d.2.json() },
            "roost": { "ttft": r.0.json(), "per_chunk": r.1.json(), "total": r.2.json() },
            "added_ttft_p50_us": stats::round(added_ttft_p50), "added_ttft_p99_us": stats::round(added_ttft_p99),
            "added_per_chunk_us": stats::round(added_per_chunk),
        }),
    )
}

impl Path {
    fn new(name: &'static str, url: String, key: String) -> Self {
        Self { name, url, key, ttft: Vec::new(), per_chunk: Vec::new(), total: Vec::new(), chunks: 0 }
    }
}

struct Timing {
    ttft: u64,
    per_chunk: u64,
    total: u64,
    chunks: usize,
}

async fn one_call(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<Timing> {
    let body = json!({
        "model": "bench-model", "stream": true, "stream_options": { "include_usage": true },
        "messages": [{ "role": "user", "content": "Say fifty words." }],
    });
    let t0 = Instant::now();
    let response = client.post(url).bearer_auth(key).json(&body).send().await?;
    anyhow::ensure!(response.status().is_success(), "status {}", response.status());
    let mut stream = response.bytes_stream();
    let mut pending = String::new();
    let mut arrivals = Vec::new();
    let mut first_token = None;
    while let Some(bytes) = stream.next().await {
        let now = Instant::now();
        pending.push_str(std::str::from_utf8(&bytes?)?);
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            arrivals.push(now);
            if first_token.is_none() && event.contains(r#""content":""#) && !event.contains(r#""content":"""#) {
                first_token = Some(now);
            }
        }
    }
    let first_token = first_token.context("no content chunk")?;
    let (first, last) = (arrivals[0], *arrivals.last().unwrap());
    let spread = last.duration_since(first).as_nanos() as u64;
    Ok(Timing {
        ttft: first_token.duration_since(t0).as_nanos() as u64,
        per_chunk: spread / (arrivals.len().max(2) - 1) as u64,
        total: last.duration_since(t0).as_nanos() as u64,
        chunks: arrivals.len(),
    })
}
