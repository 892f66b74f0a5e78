//! `roost admin …`: operator tasks against the database.

use anyhow::Context;

use crate::config::{AdminArgs, AdminTask};
use crate::db::{Db, api_tokens, credits, deletion, migrate, sessions, users};
use crate::domain::{Email, now_secs};

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let db = Db::open(&args.db.database_location(), args.db.database_token.as_deref()).await?;
    migrate::run(&db).await?;
    let conn = db.conn()?;
    match args.task {
        AdminTask::Users => {
            for user in users::list(&conn).await? {
                println!("{}\t{}\t{}", user.id, user.email.as_deref().unwrap_or("-"), user.created_at);
            }
        }
        AdminTask::RevokeSessions { email } => {
            let user = find(&conn, &email).await?;
            let ended = sessions::delete_for_user(&conn, &user.id).await?;
            let revoked = api_tokens::revoke_all(&conn, &user.id, now_secs()).await?;
            println!("ended {ended} sessions and revoked {revoked} API tokens for {email}");
        }
        AdminTask::DeleteUser { email } => {
            let user = find(&conn, &email).await?;
            deletion::delete_account(&conn, &user.id).await?;
            // The agent belongs to the running server, which destroys it within seconds.
            println!("deleted {email} ({}); a running Roost destroys its agent and data within seconds", user.id);
        }
        AdminTask::ReconcileCredits => {
            let found = credits::invariant_violations(&conn).await?;
            for line in &found {
                println!("{line}");
            }
            anyhow::ensure!(found.is_empty(), "{} credit records do not balance", found.len());
            println!("every credits balance matches its grants and its ledger");
        }
    }
    Ok(())
}

async fn find(conn: &libsql::Connection, email: &str) -> anyhow::Result<users::User> {
    let email = Email::parse(email)?;
    Ok(users::find_by_email(conn, &email).await?.with_context(|| format!("no account for {}", email.as_str()))?.user)
}
