//! Mail for "forgot password": one reset link per request, sent in the background so the
//! answer (and its timing) is the same whether the address has an account or not. Each address
//! gets at most [`PER_ADDRESS`] mails per [`WINDOW`]; more requests are answered the same and
//! dropped.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::auth::failures::FailureCounter;
use crate::domain::Email;
use crate::settings::MailSettings;

const PER_ADDRESS: u32 = 3;
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Deliveries under way at once; past it a request is dropped (and logged), not queued.
const MAX_IN_FLIGHT: usize = 16;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
    sent: FailureCounter<String>,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Mailer {
    pub fn new(settings: MailSettings) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.url.expose())?
            .timeout(Some(settings.timeout))
            .build();
        Ok(Self {
            transport,
            from: settings.from,
            timeout: settings.timeout,
            sent: FailureCounter::new(PER_ADDRESS, WINDOW),
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// Whether this address may get another mail now; counts it if so.
    pub fn take_turn(&self, to: &Email) -> bool {
        let key = to.as_str().to_string();
        if self.sent.refused_for(&key).is_some() {
            return false;
        }
        self.sent.record(&key);
        true
    }

    /// Sends the reset link, bounded in time and in deliveries at once. Never returns an
    /// error to a caller: the person asking must not learn anything from it.
    pub async fn send_reset_link(&self, to: &Email, link: &str) {
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            tracing::warn!("too many reset mails under way; this one was dropped");
            return;
        };
        let Ok(to) = to.as_str().parse::<Mailbox>() else {
            tracing::warn!("an account's email is not a mailbox lettre accepts; no reset mail");
            return;
        };
        let body = format!(
            "Someone (we hope you) asked to reset the password of your Roost account.\n\n\
             Open this link within 30 minutes to set a new one. It works once, and signs you out everywhere:\n\n\
             {link}\n\n\
             If it was not you, ignore this mail: your password stays as it is.\n"
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Reset your Roost password")
            .header(ContentType::TEXT_PLAIN)
            .body(body);
        let message = match message {
            Ok(message) => message,
            Err(e) => return tracing::warn!(error = %e, "could not build the reset mail"),
        };
        match tokio::time::timeout(self.timeout + Duration::from_secs(5), self.transport.send(message)).await {
            Ok(Ok(_)) => tracing::info!("sent a password reset mail"),
            Ok(Err(e)) => tracing::warn!(error = %e, "sending a password reset mail failed"),
            Err(_) => tracing::warn!("sending a password reset mail timed out"),
        }
    }
}
