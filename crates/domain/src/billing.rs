//! Billing: tiers that follow Stripe subscriptions, and the payment of templates.
//!
//! Stripe tells us what happened through signed webhook events. Each event is handled in
//! ONE write transaction that first inserts its id into `billing_events` (`ON CONFLICT DO
//! NOTHING`): a redelivered event finds its id and changes nothing, and two deliveries of
//! one event at the same moment queue on that key, so exactly one applies it, whichever
//! process serves them. The effect (a tier, a customer id, a template purchase) commits
//! with the id or not at all.
//!
//! Events arrive out of order. A subscription event is applied only if it is not older
//! than the last one applied to that user (`billing_accounts.last_event_at`, compared in
//! the statement that writes it); an older one is recorded as `stale` and changes
//! nothing. The tier lives in `users.tier`, which every limit reads in the statement that
//! decides, so a tier change applies to the next request on every process.
mod payments;
mod signature;
mod stripe;

use chrono::{DateTime, NaiveDateTime, Utc};
use entity::{billing_accounts, billing_events, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{Set, Unchanged},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, TryInsertResult,
};
use serde_json::Value;
use zeroize::Zeroizing;

pub use payments::{CheckoutMode, CheckoutRequest, CheckoutSession, Payments};
pub use signature::TOLERANCE_SECS;
pub use stripe::{STRIPE_API_BASE, STRIPE_TIMEOUT, StripeClient};

use crate::db::{begin_write, lock_user};
use crate::{Context, Error, Id, Result, Tier};

/// How long an event's payload (names, emails, addresses) is kept; the event id stays.
pub const PAYLOAD_RETENTION_DAYS: i64 = 30;

/// What billing needs to know about this deployment: the webhook secret, which Stripe
/// price is which tier, and where buyers come back to. The secret never prints.
#[derive(Clone, Default)]
pub struct BillingConfig {
    webhook_secret: Option<Zeroizing<String>>,
    prices: Vec<(String, Tier)>,
    public_url: String,
}

impl std::fmt::Debug for BillingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingConfig")
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("prices", &self.prices)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl BillingConfig {
    /// Billing of a server reached at `public_url` (checkout pages send buyers back there),
    /// with no webhook secret and no prices yet.
    pub fn new(public_url: &str) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            ..Self::default()
        }
    }

    /// The endpoint's signing secret (`whsec_...`); without it, webhooks are refused as
    /// not configured.
    pub fn with_webhook_secret(mut self, secret: String) -> Self {
        self.webhook_secret = Some(Zeroizing::new(secret));
        self
    }

    /// Which Stripe price id is which tier.
    pub fn with_prices(mut self, prices: Vec<(String, Tier)>) -> Self {
        self.prices = prices;
        self
    }

    /// Parses `IOPS_STRIPE_PRICES`: `price_x:pro,price_y:team`. Only `pro` and `team`
    /// are sold: `enterprise` is set by an admin, `free` is what a lapsed subscription
    /// gives.
    pub fn parse_prices(raw: &str) -> std::result::Result<Vec<(String, Tier)>, String> {
        let mut prices = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (price, tier) = pair
                .split_once(':')
                .ok_or_else(|| format!("'{pair}' is not price_id:tier"))?;
            let tier: Tier = tier
                .trim()
                .to_ascii_lowercase()
                .parse()
                .map_err(|_| format!("'{tier}' is not a tier"))?;
            if !matches!(tier, Tier::Pro | Tier::Team) {
                return Err(format!(
                    "only pro and team are sold through Stripe, not {}",
                    tier.as_str()
                ));
            }
            let price = price.trim();
            if price.is_empty() || prices.iter().any(|(p, _)| p == price) {
                return Err(format!("'{price}' is empty or given twice"));
            }
            prices.push((price.to_owned(), tier));
        }
        Ok(prices)
    }

    fn tier_of_price(&self, price: &str) -> Option<Tier> {
        self.prices
            .iter()
            .find(|(p, _)| p == price)
            .map(|(_, tier)| *tier)
    }

    fn price_of_tier(&self, tier: Tier) -> Option<&str> {
        self.prices
            .iter()
            .find(|(_, t)| *t == tier)
            .map(|(p, _)| p.as_str())
    }

    /// Where a checkout sends the buyer back: `{public_url}{path}`.
    pub(crate) fn return_url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }
}

/// What a webhook event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Its effect is applied.
    Applied,
    /// Recorded, nothing to do: a type this server does not act on, or a customer,
    /// user or template it does not know.
    Ignored,
    /// Recorded, nothing changed: older than the last subscription event applied to the
    /// same user.
    Stale,
    /// This event id was processed before; nothing changed.
    Duplicate,
}

impl WebhookOutcome {
    /// `applied`, `ignored`, `stale`, `duplicate`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Applied => "applied",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::Stale => "stale",
            WebhookOutcome::Duplicate => "duplicate",
        }
    }
}

/// An account's billing state, for `GET /billing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingStatus {
    /// The tier in force.
    pub tier: Tier,
    /// Stripe's status of the subscription (`active`, `trialing`, `past_due`,
    /// `canceled`...), `None` before any subscription event.
    pub subscription_status: Option<String>,
    /// When the paid period ends.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether the account is linked to a Stripe customer.
    pub stripe_customer_id_set: bool,
}

/// The parts of a Stripe event this server reads.
struct Event {
    id: String,
    kind: String,
    created: NaiveDateTime,
    object: Value,
    raw: Value,
}

impl Event {
    fn parse(payload: &[u8]) -> Result<Event> {
        let raw: Value = serde_json::from_slice(payload)
            .map_err(|_| Error::BadRequest("the event is not JSON".to_owned()))?;
        let text = |field: &str, max: usize| {
            raw.get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= max)
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::BadRequest(format!("the event has no usable `{field}` string"))
                })
        };
        let id = text("id", 255)?;
        let kind = text("type", 100)?;
        let created = raw
            .get("created")
            .and_then(Value::as_i64)
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| Error::BadRequest("the event has no `created` time".to_owned()))?
            .naive_utc();
        let object = raw
            .pointer("/data/object")
            .filter(|o| o.is_object())
            .cloned()
            .ok_or_else(|| Error::BadRequest("the event has no `data.object`".to_owned()))?;
        Ok(Event {
            id,
            kind,
            created,
            object,
            raw,
        })
    }

    fn str(&self, pointer: &str) -> Option<&str> {
        self.object
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    fn id_at(&self, pointer: &str) -> Option<Id> {
        self.str(pointer)
            .and_then(|s| s.parse::<uuid::Uuid>().ok())
            .map(Id)
    }
}

/// Subscription statuses that give the tier of the subscription's price.
const PAYING: &[&str] = &["active", "trialing"];
/// Subscription statuses after which the account is back on `free`.
const LAPSED: &[&str] = &["canceled", "unpaid", "incomplete_expired"];

/// Stripe checkouts, webhooks and the billing state of an account.
#[derive(Clone)]
pub struct Billing {
    ctx: Context,
}

impl Billing {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Handles one webhook delivery: `payload` is the raw body, `signature` the
    /// `Stripe-Signature` header. The signature is checked before anything else
    /// ([`Error::BadRequest`] when missing, wrong or stale; nothing is stored then), then
    /// the event is applied once (see the module documentation).
    /// [`Error::NotConfigured`] without a webhook secret.
    pub async fn webhook(&self, payload: &[u8], signature: Option<&str>) -> Result<WebhookOutcome> {
        let secret = self
            .ctx
            .billing
            .webhook_secret
            .as_ref()
            .ok_or(Error::NotConfigured(
                "Stripe webhooks are not configured on this server (IOPS_STRIPE_WEBHOOK_SECRET)",
            ))?;
        let header = signature.ok_or_else(|| {
            Error::BadRequest("the Stripe-Signature header is missing".to_owned())
        })?;
        let now = self.ctx.clock.now_naive();
        signature::verify(
            secret.as_bytes(),
            header,
            payload,
            now.and_utc().timestamp(),
        )?;
        let event = Event::parse(payload)?;

        let txn = begin_write(&self.ctx.db).await?;
        // The gate: the first delivery inserts the id; any other finds it (after the
        // first commits, on PostgreSQL) and inserts nothing.
        let inserted = billing_events::Entity::insert(billing_events::ActiveModel {
            id: Set(event.id.clone()),
            event_type: Set(event.kind.clone()),
            outcome: Set(WebhookOutcome::Ignored.as_str().to_owned()),
            user_id: Set(None),
            stripe_created: Set(event.created),
            payload: Set(Some(event.raw.clone())),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict_do_nothing_on([billing_events::Column::Id])
        .exec_without_returning(&txn)
        .await?;
        if !matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0) {
            return Ok(WebhookOutcome::Duplicate);
        }
        let (outcome, user_id) = match event.kind.as_str() {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                self.checkout_completed(&txn, &event, now).await?
            }
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted" => {
                self.subscription_changed(&txn, &event, now).await?
            }
            _ => (WebhookOutcome::Ignored, None),
        };
        billing_events::ActiveModel {
            id: Unchanged(event.id.clone()),
            outcome: Set(outcome.as_str().to_owned()),
            user_id: Set(user_id),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        txn.commit().await?;
        tracing::info!(
            event = %event.id,
            kind = %event.kind,
            outcome = outcome.as_str(),
            "billing event"
        );
        Ok(outcome)
    }

    /// `checkout.session.completed`: a template bought (`metadata.template_id`), or a
    /// subscription checkout that links the account to its Stripe customer.
    async fn checkout_completed<C: ConnectionTrait>(
        &self,
        conn: &C,
        event: &Event,
        now: NaiveDateTime,
    ) -> Result<(WebhookOutcome, Option<Id>)> {
        let Some(user_id) = event.id_at("/client_reference_id") else {
            return Ok((WebhookOutcome::Ignored, None));
        };
        let Some(user) = users::Entity::find_by_id(user_id).one(conn).await? else {
            return Ok((WebhookOutcome::Ignored, None));
        };
        if event.object.pointer("/metadata/template_id").is_some() {
            // A delayed payment method completes the session unpaid; its
            // `async_payment_succeeded` event completes the purchase later.
            let paid = matches!(
                event.str("/payment_status"),
                None | Some("paid" | "no_payment_required")
            );
            let Some(template_id) = event.id_at("/metadata/template_id").filter(|_| paid) else {
                return Ok((WebhookOutcome::Ignored, Some(user.id)));
            };
            let session = event.str("/id");
            let recorded =
                crate::templates::complete_purchase(conn, now, template_id, user.id, session)
                    .await?;
            let outcome = if recorded {
                WebhookOutcome::Applied
            } else {
                WebhookOutcome::Ignored
            };
            return Ok((outcome, Some(user.id)));
        }
        let Some(customer) = event.str("/customer") else {
            return Ok((WebhookOutcome::Ignored, Some(user.id)));
        };
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::StripeCustomerId, Expr::value(customer))
            .col_expr(users::Column::UpdatedAt, Expr::value(now));
        if let Some(subscription) = event.str("/subscription") {
            update = update.col_expr(
                users::Column::StripeSubscriptionId,
                Expr::value(subscription),
            );
        }
        update
            .filter(users::Column::Id.eq(user.id))
            .exec(conn)
            .await?;
        Ok((WebhookOutcome::Applied, Some(user.id)))
    }

    /// `customer.subscription.created|updated|deleted`: the subscription's state, and the
    /// tier it gives, unless the event is older than the last one applied.
    async fn subscription_changed<C: ConnectionTrait>(
        &self,
        conn: &C,
        event: &Event,
        now: NaiveDateTime,
    ) -> Result<(WebhookOutcome, Option<Id>)> {
        let customer = event.str("/customer");
        let mut user = match customer {
            Some(customer) => {
                users::Entity::find()
                    .filter(users::Column::StripeCustomerId.eq(customer))
                    .one(conn)
                    .await?
            }
            None => None,
        };
        if user.is_none()
            && let Some(user_id) = event.id_at("/metadata/user_id")
        {
            user = users::Entity::find_by_id(user_id).one(conn).await?;
        }
        let Some(user) = user else {
            return Ok((WebhookOutcome::Ignored, None));
        };
        // Events of one user are decided one at a time.
        let user = lock_user(conn, user.id).await?;

        let deleted = event.kind == "customer.subscription.deleted";
        let status = if deleted {
            "canceled"
        } else {
            event.str("/status").unwrap_or("incomplete")
        };
        let price = event.str("/items/data/0/price/id");
        let period_end = event
            .object
            .pointer("/current_period_end")
            .or_else(|| event.object.pointer("/items/data/0/current_period_end"))
            .and_then(Value::as_i64)
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .map(|t| t.naive_utc());

        billing_accounts::Entity::insert(billing_accounts::ActiveModel {
            user_id: Set(user.id),
            subscription_status: Set(None),
            price_id: Set(None),
            current_period_end: Set(None),
            last_event_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict_do_nothing_on([billing_accounts::Column::UserId])
        .exec_without_returning(conn)
        .await?;
        // The order check and the write are one statement: an event older than the last
        // applied one matches no row. Equal times apply in arrival order.
        let applied = billing_accounts::Entity::update_many()
            .col_expr(
                billing_accounts::Column::SubscriptionStatus,
                Expr::value(status),
            )
            .col_expr(
                billing_accounts::Column::PriceId,
                Expr::value(price.map(str::to_owned)),
            )
            .col_expr(
                billing_accounts::Column::CurrentPeriodEnd,
                Expr::value(period_end),
            )
            .col_expr(
                billing_accounts::Column::LastEventAt,
                Expr::value(event.created),
            )
            .col_expr(billing_accounts::Column::UpdatedAt, Expr::value(now))
            .filter(billing_accounts::Column::UserId.eq(user.id))
            .filter(
                Condition::any()
                    .add(billing_accounts::Column::LastEventAt.is_null())
                    .add(billing_accounts::Column::LastEventAt.lte(event.created)),
            )
            .exec(conn)
            .await?
            .rows_affected;
        if applied == 0 {
            return Ok((WebhookOutcome::Stale, Some(user.id)));
        }

        let tier = if LAPSED.contains(&status) {
            Some(Tier::Free)
        } else if PAYING.contains(&status) {
            let tier = price.and_then(|p| self.ctx.billing.tier_of_price(p));
            if tier.is_none() {
                tracing::warn!(
                    event = %event.id,
                    "a subscription's price is not in IOPS_STRIPE_PRICES; the tier is unchanged"
                );
            }
            tier
        } else {
            // past_due, incomplete, paused: Stripe is still trying; the tier stays.
            None
        };
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .col_expr(
                users::Column::StripeSubscriptionId,
                Expr::value(if deleted {
                    None
                } else {
                    event.str("/id").map(str::to_owned)
                }),
            );
        if user.stripe_customer_id.is_none() {
            update = update.col_expr(
                users::Column::StripeCustomerId,
                Expr::value(customer.map(str::to_owned)),
            );
        }
        // An account an admin made enterprise is billed by contract: no event changes
        // its tier.
        if let Some(tier) = tier.filter(|_| Tier::from(user.tier) != Tier::Enterprise) {
            update = update.col_expr(users::Column::Tier, Expr::value(tier.as_str()));
        }
        update
            .filter(users::Column::Id.eq(user.id))
            .exec(conn)
            .await?;
        Ok((WebhookOutcome::Applied, Some(user.id)))
    }

    /// A Stripe Checkout Session for a `pro` or `team` subscription of `user_id`; the
    /// tier changes when Stripe's events arrive, not here. [`Error::Validation`] for
    /// another tier, [`Error::Conflict`] for an enterprise account (billed by contract),
    /// [`Error::NotConfigured`] without a Stripe key or a price for the tier,
    /// [`Error::Upstream`] when Stripe fails.
    pub async fn checkout(&self, user_id: Id, tier: Tier) -> Result<CheckoutSession> {
        if !matches!(tier, Tier::Pro | Tier::Team) {
            return Err(Error::validation("tier must be pro or team"));
        }
        let payments = self.ctx.payments()?;
        let price = self
            .ctx
            .billing
            .price_of_tier(tier)
            .ok_or(Error::NotConfigured(
                "no Stripe price is configured for this tier (IOPS_STRIPE_PRICES)",
            ))?;
        let user = users::Entity::find_by_id(user_id)
            .one(&self.ctx.db)
            .await?
            .ok_or(Error::NotFound)?;
        if Tier::from(user.tier) == Tier::Enterprise {
            return Err(Error::Conflict(
                "enterprise accounts are billed by contract, not through checkout".to_owned(),
            ));
        }
        let request = CheckoutRequest {
            mode: CheckoutMode::Subscription {
                price: price.to_owned(),
            },
            client_reference_id: user.id,
            customer_email: user
                .stripe_customer_id
                .is_none()
                .then(|| user.email.clone()),
            customer: user.stripe_customer_id,
            metadata: vec![("user_id".to_owned(), user.id.to_string())],
            success_url: self.ctx.billing.return_url("/billing?checkout=success"),
            cancel_url: self.ctx.billing.return_url("/billing?checkout=cancelled"),
        };
        payments.create_checkout(&request).await
    }

    /// The billing state of `user_id`.
    pub async fn status(&self, user_id: Id) -> Result<BillingStatus> {
        let user = users::Entity::find_by_id(user_id)
            .one(&self.ctx.db)
            .await?
            .ok_or(Error::NotFound)?;
        let account = billing_accounts::Entity::find_by_id(user_id)
            .one(&self.ctx.db)
            .await?;
        Ok(BillingStatus {
            tier: user.tier.into(),
            subscription_status: account.as_ref().and_then(|a| a.subscription_status.clone()),
            current_period_end: account
                .as_ref()
                .and_then(|a| a.current_period_end)
                .map(|t| t.and_utc()),
            stripe_customer_id_set: user.stripe_customer_id.is_some(),
        })
    }

    /// Clears the payload of events received more than [`PAYLOAD_RETENTION_DAYS`] ago
    /// (their ids stay, so redeliveries are still recognised) and returns how many.
    pub async fn prune(&self) -> Result<u64> {
        let cutoff = self.ctx.clock.now_naive() - chrono::Duration::days(PAYLOAD_RETENTION_DAYS);
        Ok(billing_events::Entity::update_many()
            .col_expr(
                billing_events::Column::Payload,
                Expr::value(Option::<Value>::None),
            )
            .filter(billing_events::Column::Payload.is_not_null())
            .filter(billing_events::Column::CreatedAt.lt(cutoff))
            .exec(&self.ctx.db)
            .await?
            .rows_affected)
    }
}
