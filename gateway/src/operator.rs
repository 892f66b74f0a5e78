//! The operator's actions, shared by `roost admin` and `/api/admin/*`: each checks its input,
//! does its work through the `db` modules and writes its audit row. What only a running server
//! can do (closing sockets, stopping the agent) stays with the route.

use crate::auth::invite;
use crate::db::admin_audit::{self, Actor};
use crate::db::credits::{self, GrantSource, NewGrant};
use crate::db::{Db, invites, sessions, users};
use crate::domain::{UserId, now_secs};

/// Credits one adjustment may move either way.
pub const MAX_ADJUSTMENT: i64 = 10_000_000;
const REASON_CHARS: std::ops::RangeInclusive<usize> = 3..=200;

/// A refusal of the input, in a sentence.
#[derive(Debug)]
pub struct Refused(pub String);

pub enum Failure {
    Refused(Refused),
    Db(libsql::Error),
}

impl From<libsql::Error> for Failure {
    fn from(e: libsql::Error) -> Self {
        Self::Db(e)
    }
}

fn refused<T>(sentence: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Refused(Refused(sentence.into())))
}

pub async fn audit(
    db: &Db,
    actor: &Actor<'_>,
    action: &str,
    target: Option<&UserId>,
    detail: &str,
) -> Result<(), libsql::Error> {
    let entry =
        admin_audit::Entry { actor: *actor, action, target_user_id: target.map(UserId::as_str), detail, allowed: true };
    admin_audit::append(&*db.conn()?, &entry, now_secs()).await
}

pub struct Adjusted {
    /// Credits actually added (positive) or taken (negative); a take is capped by the balance.
    pub moved: i64,
    pub reference: String,
}

/// Adds credits as a grant, or takes them back from live grants; both through the ledger.
pub async fn adjust_credits(
    db: &Db,
    actor: &Actor<'_>,
    user: &UserId,
    delta: i64,
    reason: &str,
) -> Result<Adjusted, Failure> {
    let reason = reason.trim();
    if delta == 0 || delta.abs() > MAX_ADJUSTMENT {
        return refused(format!("An adjustment moves 1 to {MAX_ADJUSTMENT} credits, up or down; not {delta}."));
    }
    if !REASON_CHARS.contains(&reason.chars().count()) || reason.chars().any(char::is_control) {
        return refused("Give a reason of 3 to 200 characters on one line; it is kept in the audit log.");
    }
    let reference = format!("adjust:{}", crate::crypto::b64url(&crate::crypto::random_bytes::<12>()));
    let now = now_secs();
    let moved = if delta > 0 {
        let grant = NewGrant {
            source: GrantSource::Adjustment,
            source_ref: &reference,
            amount: delta.unsigned_abs(),
            priority: 50,
            effective_at: now,
            expires_at: None,
        };
        credits::grant_in_turn(db, user, &grant, now).await?;
        delta
    } else {
        -credits::take_back_in_turn(db, user, delta.unsigned_abs(), &reference, now).await?.unwrap_or(0)
    };
    let detail = format!("asked {delta:+}, moved {moved:+} ({reference}): {reason}");
    audit(db, actor, "credits.adjust", Some(user), &detail).await?;
    Ok(Adjusted { moved, reference })
}

/// Suspends the account and ends its sessions (its API tokens stay, refused while suspended).
/// False if it was suspended already.
pub async fn suspend(db: &Db, actor: &Actor<'_>, user: &UserId) -> Result<bool, Failure> {
    if let Actor::User(me) = actor
        && *me == user
    {
        return refused("You cannot suspend your own account.");
    }
    let conn = db.conn()?;
    if !users::set_suspended(&conn, user, Some(now_secs())).await? {
        return Ok(false);
    }
    let ended = sessions::delete_for_user(&conn, user).await?;
    drop(conn);
    audit(db, actor, "user.suspend", Some(user), &format!("ended {ended} sessions")).await?;
    Ok(true)
}

pub async fn unsuspend(db: &Db, actor: &Actor<'_>, user: &UserId) -> Result<bool, Failure> {
    if !users::set_suspended(&*db.conn()?, user, None).await? {
        return Ok(false);
    }
    audit(db, actor, "user.unsuspend", Some(user), "").await?;
    Ok(true)
}

pub struct NewInvite {
    pub code: String,
    pub id: String,
    pub uses: u32,
    pub expires_at: i64,
}

pub async fn create_invite(db: &Db, actor: &Actor<'_>, uses: u32, lifetime: &str) -> Result<NewInvite, Failure> {
    let uses = invite::uses(uses).or_else(|e| refused(format!("{}.", capitalize(&e))))?;
    let lifetime = invite::lifetime_secs(lifetime).or_else(|e| refused(format!("{}.", capitalize(&e))))?;
    let fresh = invite::generate();
    let now = now_secs();
    let created_by = match actor {
        Actor::User(id) => id.as_str().to_string(),
        Actor::Cli => "cli".to_string(),
    };
    let new = invites::NewInvite {
        id: &fresh.id,
        code_hash: &fresh.hash,
        uses,
        expires_at: Some(now + lifetime),
        created_by: &created_by,
        now,
    };
    if !invites::create(&*db.conn()?, &new).await? {
        return refused(format!(
            "There are {} unspent invite codes already. Revoke some before making more.",
            invites::MAX_LIVE
        ));
    }
    audit(db, actor, "invite.create", None, &format!("{} for {uses} accounts, {lifetime} s", fresh.id)).await?;
    Ok(NewInvite { code: fresh.code, id: fresh.id, uses, expires_at: now + lifetime })
}

pub async fn revoke_invite(db: &Db, actor: &Actor<'_>, id: &str) -> Result<bool, Failure> {
    if id.len() > 40 || !invites::revoke(&*db.conn()?, id, now_secs()).await? {
        return Ok(false);
    }
    audit(db, actor, "invite.revoke", None, id).await?;
    Ok(true)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
