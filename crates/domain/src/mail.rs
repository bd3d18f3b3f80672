//! Invitation mail, sent after the invitation commits and never on the request's time.
//!
//! [`Outbox`] is a bounded queue with one worker: [`crate::Collaborations::invite`] posts
//! to it after its transaction commits (a rolled-back invitation mails nobody), and the
//! worker delivers through a [`MailTransport`], retrying with backoff. A full queue drops
//! the mail with a warning instead of slowing the request: the invitation itself stands,
//! and its `invite_url` (shown to the owner) is the way to share it anyway.
//!
//! [`SmtpTransport`] is the production transport (lettre); other programs can plug their
//! own.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::mpsc;

use crate::{Error, Result, Role};

/// Mails waiting at most; beyond it new ones are dropped (and logged).
const QUEUE: usize = 1024;
/// Delivery attempts per mail, and the wait before the first retry (doubled each time).
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// An invitation to mail. Its `url` holds the invitation token: `Debug` leaves it out.
#[derive(Clone)]
pub struct InvitationMail {
    /// The invited address.
    pub to: String,
    /// Who invites (their name, or their email when they have none).
    pub inviter: String,
    /// The analysis shared.
    pub analysis: String,
    /// The role offered.
    pub role: Role,
    /// The absolute link that opens the invitation.
    pub url: String,
    /// When the invitation stops working.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for InvitationMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvitationMail")
            .field("analysis", &self.analysis)
            .field("role", &self.role)
            .field("url", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl InvitationMail {
    /// The subject line.
    pub fn subject(&self) -> String {
        format!(
            "{} shared \"{}\" with you on iOps",
            self.inviter, self.analysis
        )
    }

    /// The plain-text body.
    pub fn body(&self) -> String {
        format!(
            "{inviter} invited you to \"{analysis}\" on iOps as {role}.\n\n\
             Open this link while logged in as {to} to accept or decline:\n\n{url}\n\n\
             The invitation expires on {expires} UTC. If you did not expect it, ignore this \
             message.\n",
            inviter = self.inviter,
            analysis = self.analysis,
            role = self.role.as_str(),
            to = self.to,
            url = self.url,
            expires = self.expires_at.format("%Y-%m-%d %H:%M"),
        )
    }
}

/// Delivers one mail; an error is retried by the [`Outbox`].
#[async_trait::async_trait]
pub trait MailTransport: Send + Sync + 'static {
    /// Sends `mail`; the error text is logged, so it must hold no secret.
    async fn send(&self, mail: &InvitationMail) -> std::result::Result<(), String>;
}

/// SMTP through lettre: `smtp://host:port` (plain, or STARTTLS with `?tls=required`),
/// `smtps://host:port` (TLS), with credentials in the URL when the server needs them.
pub struct SmtpTransport {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpTransport {
    /// A transport for `url`, sending from `from` (`"iOps <noreply@example.com>"`).
    /// Refuses a malformed URL or sender; the error never repeats the URL (it may hold a
    /// password).
    pub fn new(url: &str, from: &str) -> Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| {
                Error::validation("IOPS_SMTP_URL must be smtp://host:port or smtps://host:port")
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| Error::validation(format!("IOPS_SMTP_FROM is not a mailbox: {e}")))?;
        Ok(Self { transport, from })
    }
}

#[async_trait::async_trait]
impl MailTransport for SmtpTransport {
    async fn send(&self, mail: &InvitationMail) -> std::result::Result<(), String> {
        let to = mail
            .to
            .parse::<Mailbox>()
            .map_err(|e| format!("bad recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body())
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The queue invitation mail goes through (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::Sender<InvitationMail>,
    public_url: Arc<str>,
}

impl Outbox {
    /// Starts the worker on the current tokio runtime. `public_url` is where people reach
    /// this server (`https://iops.example.com`); invitation links are built on it. The
    /// worker ends when every clone of the outbox is dropped and the queue is empty.
    pub fn start(
        transport: Arc<dyn MailTransport>,
        public_url: &str,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let (queue, mut inbox) = mpsc::channel::<InvitationMail>(QUEUE);
        let worker = tokio::spawn(async move {
            while let Some(mail) = inbox.recv().await {
                deliver(transport.as_ref(), &mail).await;
            }
        });
        let outbox = Outbox {
            queue,
            public_url: public_url.trim_end_matches('/').into(),
        };
        (outbox, worker)
    }

    /// The absolute form of a path on this server.
    pub(crate) fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// Queues `mail` without waiting; a full queue drops it.
    pub(crate) fn post(&self, mail: InvitationMail) {
        if self.queue.try_send(mail).is_err() {
            tracing::warn!("invitation mail dropped: the mail queue is full or closed");
        }
    }
}

async fn deliver(transport: &dyn MailTransport, mail: &InvitationMail) {
    let mut wait = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        match transport.send(mail).await {
            Ok(()) => {
                tracing::info!(attempt, "invitation mail sent");
                return;
            }
            Err(error) if attempt < ATTEMPTS => {
                tracing::warn!(attempt, %error, "invitation mail failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(error) => {
                tracing::error!(attempt, %error, "invitation mail failed; giving up");
            }
        }
    }
}
