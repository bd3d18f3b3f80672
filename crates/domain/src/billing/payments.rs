//! The payment provider port: what the rules need from Stripe, and nothing else. The
//! domain builds the request; [`super::stripe::StripeClient`] speaks Stripe's HTTP API;
//! tests point that client at a local server that answers in Stripe's shapes.
use async_trait::async_trait;

use crate::{Id, Result};

/// What a Checkout Session sells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckoutMode {
    /// A tier subscription (`mode=subscription`) at a Stripe price id.
    Subscription {
        /// Stripe's `price_...` id of the tier.
        price: String,
    },
    /// A one-time payment (`mode=payment`) of a template.
    Payment {
        /// The price in the currency's smallest unit.
        amount_cents: i64,
        /// ISO 4217, lower case (`usd`).
        currency: String,
        /// What the buyer sees on Stripe's page.
        product_name: String,
    },
}

/// A Checkout Session to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// Subscription or one-time payment.
    pub mode: CheckoutMode,
    /// The buyer: comes back as `client_reference_id` in `checkout.session.completed`.
    pub client_reference_id: Id,
    /// The buyer's Stripe customer, when they already have one.
    pub customer: Option<String>,
    /// Prefills the email on Stripe's page for a new customer.
    pub customer_email: Option<String>,
    /// Key/value pairs echoed back in the webhook (`template_id`, `user_id`). For a
    /// subscription they are also put on the subscription (`subscription_data[metadata]`).
    pub metadata: Vec<(String, String)>,
    /// Where Stripe sends the buyer after paying.
    pub success_url: String,
    /// Where Stripe sends the buyer who gives up.
    pub cancel_url: String,
}

/// A created Checkout Session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSession {
    /// Stripe's `cs_...` id.
    pub id: String,
    /// The page to send the buyer to.
    pub url: String,
}

/// The payment provider. Implementations time out and never log or return a secret;
/// a failure of the provider is [`crate::Error::Upstream`].
#[async_trait]
pub trait Payments: Send + Sync {
    /// Creates a Checkout Session.
    async fn create_checkout(&self, request: &CheckoutRequest) -> Result<CheckoutSession>;
}
