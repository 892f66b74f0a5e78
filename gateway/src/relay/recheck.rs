//! Closes sockets whose credential ended without this process hearing of it: a session that
//! expired (idle or absolute), or a revocation by `roost admin` or another instance.

use crate::app::AppState;
use crate::db::credentials;
use crate::domain::now_secs;

/// Runs until aborted, checking every `Timings::credential_recheck`.
pub async fn recheck_credentials(state: AppState) {
    let mut tick = tokio::time::interval(state.relays.timings.credential_recheck);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let open = state.relays.open_credentials();
        if open.is_empty() {
            continue;
        }
        let db = state.db.clone();
        let idle_secs = state.site.session_idle_secs;
        let runtime = tokio::runtime::Handle::current();
        // libSQL's local calls block; they run off the async workers.
        let checked = tokio::task::spawn_blocking(move || {
            runtime.block_on(async { credentials::ended(&*db.conn()?, &open, now_secs(), idle_secs).await })
        })
        .await;
        match checked {
            Ok(Ok(ended)) => {
                for (user, via) in ended {
                    tracing::info!(user_id = %user, "a socket's credential ended; closing it");
                    state.relays.revoke_exact(&user, &via);
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "checking socket credentials failed"),
            Err(e) => tracing::warn!(error = %e, "the socket credential check failed"),
        }
    }
}
