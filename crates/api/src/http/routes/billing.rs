//! Billing (`/api/v1/billing`): Stripe's webhook, subscription checkouts, and the
//! caller's billing state. The rules (signature, once-only events, ordering, tiers) are
//! the domain's `Billing`; see docs/billing.md for connecting a Stripe account.
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::dto::Tier;
use crate::http::extract::Json;
use crate::http::problem::{Problem, responses};

/// Registers this module's operations.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(webhook).service(checkout).service(status);
}

type Answer = Result<HttpResponse, Problem>;

/// Larger than any event Stripe sends (they are a few KiB), small enough to refuse junk
/// before reading it all.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// The answer to an accepted webhook delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    pub received: bool,
    /// `applied`, `ignored` (a type, customer or user this server does not act on),
    /// `stale` (older than the last subscription event applied) or `duplicate` (this
    /// event id was handled before).
    #[schema(example = "applied")]
    pub outcome: &'static str,
}

/// Receive a Stripe event
#[utoipa::path(
    tag = "billing",
    description = "Stripe's webhook endpoint. The `Stripe-Signature` header is verified \
        (HMAC-SHA256 of `{t}.{body}` with the endpoint's secret, any of several `v1` values, \
        300 s tolerance) before anything else. Each event id is applied once; a redelivery \
        answers `200` and changes nothing. Subscription events older than the last one \
        applied to the same user change nothing. Unknown types answer `200` and are \
        recorded as ignored.",
    params(("Stripe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex>[,v1=<hex>...]`")),
    request_body(content = Object, description = "The event, exactly as Stripe sent it", content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted (applied, ignored, stale or duplicate)", body = WebhookAnswer),
        (status = 400, description = "Missing, wrong or stale signature, or an event that is not JSON; nothing was stored", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than an event can be", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No webhook secret is configured (`IOPS_STRIPE_WEBHOOK_SECRET`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/billing/webhook")]
pub async fn webhook(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> Answer {
    let body = body
        .to_bytes_limited(MAX_EVENT_BYTES)
        .await
        .map_err(|_| Problem::payload_too_large(MAX_EVENT_BYTES as u64))?
        .map_err(|_| Problem::bad_request("the request body broke off"))?;
    let signature = request
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let outcome = state.domain.billing.webhook(&body, signature).await?;
    Ok(HttpResponse::Ok().json(WebhookAnswer {
        received: true,
        outcome: outcome.as_str(),
    }))
}

/// `POST /api/v1/billing/checkout` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// `pro` or `team`.
    pub tier: Tier,
}

/// Where to send the buyer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutUrl {
    /// Stripe's Checkout page.
    pub url: String,
}

/// Start a subscription checkout
#[utoipa::path(
    tag = "billing",
    security(("bearer" = [])),
    request_body = CheckoutBody,
    description = "Creates a Stripe Checkout Session for a subscription to `tier`. The tier \
        changes when Stripe's events arrive at the webhook, not here.",
    responses(
        (status = 200, description = "The Checkout page to send the buyer to", body = CheckoutUrl),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 409, description = "An enterprise account (billed by contract)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A tier other than pro or team, or an unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe failed or did not answer in time", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No Stripe key (`IOPS_STRIPE_API_KEY`) or no price for the tier (`IOPS_STRIPE_PRICES`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/billing/checkout")]
pub async fn checkout(
    state: web::Data<AppState>,
    me: CurrentUser,
    body: Json<CheckoutBody>,
) -> Answer {
    let session = state
        .domain
        .billing
        .checkout(me.id(), body.into_inner().tier)
        .await?;
    Ok(HttpResponse::Ok().json(CheckoutUrl { url: session.url }))
}

/// The caller's billing state.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingDto {
    pub tier: Tier,
    /// Stripe's status of the subscription (`active`, `trialing`, `past_due`,
    /// `canceled`, ...); `null` before any subscription.
    pub subscription_status: Option<String>,
    /// When the paid period ends.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether the account is linked to a Stripe customer.
    pub stripe_customer_id_set: bool,
}

/// The caller's billing state
#[utoipa::path(
    tag = "billing",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's tier and subscription", body = BillingDto),
        responses::Unauthenticated,
    )
)]
#[get("/api/v1/billing")]
pub async fn status(state: web::Data<AppState>, me: CurrentUser) -> Answer {
    let status = state.domain.billing.status(me.id()).await?;
    Ok(HttpResponse::Ok().json(BillingDto {
        tier: status.tier,
        subscription_status: status.subscription_status,
        current_period_end: status.current_period_end,
        stripe_customer_id_set: status.stripe_customer_id_set,
    }))
}
