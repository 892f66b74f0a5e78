//! `--smtp-url` and `--smtp-from`: both or neither, each checked here.

use crate::config::MailArgs;
use crate::secret::SecretString;

pub struct MailSettings {
    pub url: SecretString,
    pub from: lettre::message::Mailbox,
    pub timeout: std::time::Duration,
}

/// `Some(None)`: mail is off; `None`: a problem was noted.
pub fn mail(args: &MailArgs, problems: &mut super::Problems) -> Option<Option<MailSettings>> {
    match (&args.smtp_url, &args.smtp_from) {
        (None, None) => Some(None),
        (Some(_), None) | (None, Some(_)) => {
            problems.push("--smtp-url and --smtp-from go together: set both to send mail, or neither");
            None
        }
        (Some(url), Some(from)) => {
            let mut ok = true;
            // The URL may hold a password: the problem line never repeats it.
            if let Err(e) = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url.expose()) {
                problems.push(format!("--smtp-url is not an smtp:// or smtps:// URL lettre can use ({})", e_kind(&e)));
                ok = false;
            }
            if args.smtp_timeout_secs == 0 {
                problems.push("--smtp-timeout-secs is 0, which would fail every delivery; it must be at least 1");
                ok = false;
            }
            let from = match from.parse::<lettre::message::Mailbox>() {
                Ok(from) => Some(from),
                Err(e) => {
                    problems
                        .push(format!("--smtp-from {from:?} is not an address like Roost <roost@example.com>: {e}"));
                    None
                }
            };
            let timeout = std::time::Duration::from_secs(args.smtp_timeout_secs);
            match (ok, from) {
                (true, Some(from)) => Some(Some(MailSettings { url: url.clone(), from, timeout })),
                _ => None,
            }
        }
    }
}

fn e_kind(e: &lettre::transport::smtp::Error) -> &'static str {
    if e.is_client() { "a bad address or parameter" } else { "unusable" }
}
