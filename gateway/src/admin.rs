//! `roost admin …`: operator tasks against the database.

use anyhow::Context;

use crate::config::{AdminArgs, AdminTask};
use crate::db::admin_audit::{self, Actor};
use crate::db::{Db, admin_views, api_tokens, credits, deletion, invites, machine_events, migrate, sessions, users};
use crate::domain::{Email, now_secs};
use crate::operator;

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let db = Db::open(&args.db.database_location(), args.db.database_token.as_deref()).await?;
    migrate::run(&db).await?;
    let conn = db.conn()?;
    match args.task {
        AdminTask::Users => {
            println!("id\temail\trole\tcreated\tmachine\tsince\tlast activity\tcredits");
            let mut offset = 0;
            loop {
                let page = admin_views::users(&conn, 500, offset).await?;
                for user in &page {
                    println!("{}", user_line(user));
                }
                if page.len() < 500 {
                    break;
                }
                offset += 500;
            }
        }
        AdminTask::Events { email, limit } => {
            let user = find(&conn, &email).await?;
            for event in machine_events::recent(&db, &user.id, limit.min(1000)).await?.into_iter().rev() {
                println!("{}\t{}\t{}\t{}", event.at, event.state, event.stage, event.reason);
            }
        }
        AdminTask::RevokeSessions { email } => {
            let user = find(&conn, &email).await?;
            let ended = sessions::delete_for_user(&conn, &user.id).await?;
            let revoked = api_tokens::revoke_all(&conn, &user.id, now_secs()).await?;
            let detail = format!("ended {ended} sessions, revoked {revoked} API tokens");
            operator::audit(&db, &Actor::Cli, "user.revoke_sessions", Some(&user.id), &detail).await?;
            println!("ended {ended} sessions and revoked {revoked} API tokens for {email}");
        }
        AdminTask::DeleteUser { email } => {
            let user = find(&conn, &email).await?;
            deletion::delete_account(&conn, &user.id).await?;
            // The row outlives the account on purpose: the audit is the record that it was deleted.
            operator::audit(&db, &Actor::Cli, "user.delete", Some(&user.id), "").await?;
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
        AdminTask::GrantAdmin { email } => {
            let user = find(&conn, &email).await?;
            users::set_admin(&conn, &user.id, true).await?;
            operator::audit(&db, &Actor::Cli, "user.grant_admin", Some(&user.id), "").await?;
            println!("{email} is an admin now");
        }
        AdminTask::RevokeAdmin { email } => {
            let user = find(&conn, &email).await?;
            users::set_admin(&conn, &user.id, false).await?;
            operator::audit(&db, &Actor::Cli, "user.revoke_admin", Some(&user.id), "").await?;
            println!("{email} is no longer an admin");
        }
        AdminTask::CreateInvite { uses, expires_in } => {
            let made = operator::create_invite(&db, &Actor::Cli, uses, &expires_in).await.map_err(failure)?;
            println!("{}", made.code);
            eprintln!(
                "invite {} for {} account(s), valid until {} (Unix time); the code is not shown again",
                made.id, made.uses, made.expires_at
            );
        }
        AdminTask::Invites => {
            for i in invites::list(&conn, 1000).await? {
                let state = if i.revoked_at.is_some() {
                    "revoked"
                } else if i.uses_left == 0 {
                    "used up"
                } else if i.expires_at.is_some_and(|t| t <= now_secs()) {
                    "expired"
                } else {
                    "live"
                };
                let expires = i.expires_at.map_or("-".to_string(), |t| t.to_string());
                println!("{}\t{}/{} left\t{state}\texpires {expires}", i.id, i.uses_left, i.uses);
            }
        }
        AdminTask::RevokeInvite { id } => {
            anyhow::ensure!(
                operator::revoke_invite(&db, &Actor::Cli, &id).await.map_err(failure)?,
                "no unrevoked invite {id}"
            );
            println!("revoked {id}");
        }
        AdminTask::Suspend { email } => {
            let user = find(&conn, &email).await?;
            if operator::suspend(&db, &Actor::Cli, &user.id).await.map_err(failure)? {
                // The running server closes its sockets and stops its agent within seconds.
                println!("suspended {email}; a running Roost closes its chats and stops its agent within seconds");
            } else {
                println!("{email} was suspended already");
            }
        }
        AdminTask::Unsuspend { email } => {
            let user = find(&conn, &email).await?;
            if operator::unsuspend(&db, &Actor::Cli, &user.id).await.map_err(failure)? {
                println!("{email} may sign in again");
            } else {
                println!("{email} was not suspended");
            }
        }
        AdminTask::AdjustCredits { email, delta, reason } => {
            let user = find(&conn, &email).await?;
            let done = operator::adjust_credits(&db, &Actor::Cli, &user.id, delta, &reason).await.map_err(failure)?;
            println!("moved {:+} credits for {email} ({})", done.moved, done.reference);
        }
        AdminTask::ResetPassword { email, public_origin } => {
            let origin = crate::settings::normalize_origin(&public_origin).context("--public-origin")?;
            let credentials = users::find_by_email(&conn, &Email::parse(&email)?)
                .await?
                .with_context(|| format!("no account for {email}"))?;
            anyhow::ensure!(
                credentials.password_hash.is_some(),
                "{email} signs in through Clerk and has no password here"
            );
            let link = crate::auth::reset::issue(&conn, &credentials.user.id, &origin).await?;
            operator::audit(&db, &Actor::Cli, "user.reset_link", Some(&credentials.user.id), "").await?;
            println!("{link}");
            eprintln!("the link works once, for 30 minutes; using it signs {email} out everywhere");
        }
        AdminTask::Audit { limit } => {
            for row in admin_audit::recent(&conn, None, limit.min(10_000)).await?.into_iter().rev() {
                let actor = row.actor_email.as_deref().unwrap_or(&row.actor);
                let outcome = if row.allowed { "" } else { "REFUSED " };
                let target = row.target_user_id.as_deref().unwrap_or("-");
                println!("{}\t{actor}\t{outcome}{}\t{target}\t{}", row.at, row.action, row.detail);
            }
        }
    }
    Ok(())
}

fn user_line(user: &admin_views::UserRow) -> String {
    let or_dash = |t: Option<i64>| t.map_or("-".to_string(), |t| t.to_string());
    let role = match (user.is_admin, user.suspended_at.is_some()) {
        (_, true) => "suspended",
        (true, false) => "admin",
        (false, false) => "-",
    };
    let machine = match (&user.machine_state, &user.machine_stage) {
        (Some(state), Some(stage)) if !stage.is_empty() && stage != state => format!("{state} ({stage})"),
        (Some(state), _) => state.clone(),
        (None, _) => "none".to_string(),
    };
    format!(
        "{}\t{}\t{role}\t{}\t{machine}\t{}\t{}\t{}",
        user.id,
        user.email.as_deref().unwrap_or("(Clerk)"),
        user.created_at,
        or_dash(user.machine_since),
        or_dash(user.last_activity_at),
        user.balance
    )
}

fn failure(failure: operator::Failure) -> anyhow::Error {
    match failure {
        operator::Failure::Refused(refused) => anyhow::anyhow!(refused.0),
        operator::Failure::Db(e) => e.into(),
    }
}

async fn find(conn: &libsql::Connection, email: &str) -> anyhow::Result<users::User> {
    let email = Email::parse(email)?;
    Ok(users::find_by_email(conn, &email).await?.with_context(|| format!("no account for {}", email.as_str()))?.user)
}
