//! Creates benchmark users with live sessions directly in Roost's database, through Roost's own
//! `gateway::db` code, before Roost starts. Signing up 10,000 users through the API would spend
//! minutes in Argon2; the benchmarks measure `/ws`, not signup. One password hash is shared.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use gateway::crypto::{random_token, sha256_hex};
use gateway::db::sessions::{self, NewSession};
use gateway::db::{Db, users};
use gateway::domain::{Email, now_secs};

#[derive(clap::Args)]
pub struct Args {
    /// Roost's `--data-dir`; the database is `<data-dir>/roost.db`.
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    users: usize,
    /// Where to write `user_id<TAB>session secret` lines.
    #[arg(long)]
    out: PathBuf,
    /// How long ago each session was last used. Over a minute ago (the default), each user's
    /// first `/ws` also refreshes `last_seen_at` (a write), as for someone coming back to the chat.
    #[arg(long, default_value_t = 3600)]
    last_seen_secs_ago: i64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let db = Db::open(&args.data_dir.join("roost.db").to_string_lossy(), None).await?;
    gateway::db::migrate::run(&db).await?;
    let hasher = gateway::auth::password::PasswordHasher::new(1, 0)?;
    let hash = hasher.hash("bench password, never used").await.map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    let conn = db.conn()?;
    let now = now_secs();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    conn.execute("BEGIN", ()).await?;
    for i in 0..args.users {
        let email = Email::parse(&format!("bench{i}@bench.example")).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let user = match users::create_local(&conn, &email, &hash, users::Accounts::Many, None).await {
            Ok(user) => user,
            Err(users::CreateError::EmailTaken) => {
                anyhow::bail!("{} exists already: seed a fresh data dir", email.as_str())
            }
            Err(users::CreateError::AccountLimit | users::CreateError::InviteInvalid) => {
                unreachable!("seeding allows many accounts and needs no invite")
            }
            Err(users::CreateError::Db(e)) => return Err(e).context("creating a user"),
        };
        let secret = random_token();
        sessions::create(
            &conn,
            NewSession {
                token_hash: &sha256_hex(secret.as_bytes()),
                user_id: &user.id,
                now: now - args.last_seen_secs_ago,
                expires_at: now + 30 * 86_400,
                user_agent: Some("roost-bench"),
                ip: Some("127.0.0.1"),
            },
        )
        .await?;
        writeln!(out, "{}\t{secret}", user.id.as_str())?;
    }
    conn.execute("COMMIT", ()).await?;
    out.flush()?;
    eprintln!("seeded {} users into {}", args.users, args.data_dir.display());
    Ok(())
}
