//! The one client of Stripe's HTTP API: form-encoded requests with the secret key as a
//! bearer token, a timeout on every call, and errors that name Stripe's error type and
//! code but never the key or the request.
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::payments::{CheckoutMode, CheckoutRequest, CheckoutSession, Payments};
use crate::{Error, Result};

/// Stripe's API, for [`StripeClient::new`].
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";

/// How long one call to Stripe may take.
pub const STRIPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Speaks Stripe's HTTP API at a base URL (Stripe's own, or a local server in tests).
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    key: Zeroizing<String>,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base", &self.base)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl StripeClient {
    /// A client of the API at `base` (no trailing `/v1`) with the secret key `key`.
    pub fn new(base: &str, key: String, timeout: Duration) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the Stripe client: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: Zeroizing::new(key),
        })
    }
}

/// The form fields of a Checkout Session, in Stripe's bracket notation.
fn checkout_form(request: &CheckoutRequest) -> Vec<(String, String)> {
    let mut form = vec![
        (
            "client_reference_id".to_owned(),
            request.client_reference_id.to_string(),
        ),
        ("success_url".to_owned(), request.success_url.clone()),
        ("cancel_url".to_owned(), request.cancel_url.clone()),
        ("line_items[0][quantity]".to_owned(), "1".to_owned()),
    ];
    match &request.mode {
        CheckoutMode::Subscription { price } => {
            form.push(("mode".to_owned(), "subscription".to_owned()));
            form.push(("line_items[0][price]".to_owned(), price.clone()));
            for (key, value) in &request.metadata {
                form.push((format!("subscription_data[metadata][{key}]"), value.clone()));
            }
        }
        CheckoutMode::Payment {
            amount_cents,
            currency,
            product_name,
        } => {
            form.push(("mode".to_owned(), "payment".to_owned()));
            form.push((
                "line_items[0][price_data][currency]".to_owned(),
                currency.clone(),
            ));
            form.push((
                "line_items[0][price_data][unit_amount]".to_owned(),
                amount_cents.to_string(),
            ));
            form.push((
                "line_items[0][price_data][product_data][name]".to_owned(),
                product_name.clone(),
            ));
        }
    }
    for (key, value) in &request.metadata {
        form.push((format!("metadata[{key}]"), value.clone()));
    }
    if let Some(customer) = &request.customer {
        form.push(("customer".to_owned(), customer.clone()));
    } else if let Some(email) = &request.customer_email {
        form.push(("customer_email".to_owned(), email.clone()));
    }
    form
}

#[derive(Deserialize)]
struct SessionBody {
    id: String,
    url: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: StripeError,
}

/// Stripe's error object, without its `message` (which may quote what was sent).
#[derive(Deserialize)]
struct StripeError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    param: Option<String>,
}

#[async_trait]
impl Payments for StripeClient {
    async fn create_checkout(&self, request: &CheckoutRequest) -> Result<CheckoutSession> {
        let response = self
            .http
            .post(format!("{}/v1/checkout/sessions", self.base))
            .bearer_auth(self.key.as_str())
            .form(&checkout_form(request))
            .send()
            .await
            .map_err(|e| {
                let why = if e.is_timeout() {
                    "did not answer in time"
                } else {
                    "could not be reached"
                };
                Error::Upstream(format!("the payment provider {why}"))
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|_| Error::Upstream("the payment provider's answer broke off".to_owned()))?;
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorBody>(&body)
                .ok()
                .map(|b| b.error);
            tracing::warn!(
                status = status.as_u16(),
                kind = error.as_ref().and_then(|e| e.kind.as_deref()),
                code = error.as_ref().and_then(|e| e.code.as_deref()),
                param = error.as_ref().and_then(|e| e.param.as_deref()),
                "Stripe refused a Checkout Session"
            );
            return Err(Error::Upstream(format!(
                "the payment provider refused the checkout (HTTP {})",
                status.as_u16()
            )));
        }
        let session: SessionBody = serde_json::from_slice(&body).map_err(|_| {
            Error::Upstream("the payment provider answered something unexpected".to_owned())
        })?;
        let url = session.url.ok_or_else(|| {
            Error::Upstream("the payment provider's session has no url".to_owned())
        })?;
        Ok(CheckoutSession {
            id: session.id,
            url,
        })
    }
}
