//! Billing: Stripe webhooks (signed here exactly as Stripe signs them), the tier they
//! give, and checkouts through the real Stripe client against a local stand-in.
use std::sync::Arc;

use domain::billing::{BillingConfig, WebhookOutcome};
use domain::{Clock, Domain, Error, FixedClock, Id, Tier};
use entity::{billing_events, users};
use iops_tests::stripe::{self, Behaviour, StripeFake};
use iops_tests::{TestDb, count, on_both};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use crate::support::default_now;
use crate::usage::new_user;

const SECRET: &str = "whsec_test_current";
const OLD_SECRET: &str = "whsec_test_previous";

struct Billing {
    db: TestDb,
    domain: Domain,
    clock: Arc<FixedClock>,
}

fn config() -> BillingConfig {
    BillingConfig::new("https://iops.example")
        .with_webhook_secret(SECRET.to_owned())
        .with_prices(BillingConfig::parse_prices("price_pro:pro, price_team:team").unwrap())
}

async fn billing(
    db: TestDb,
    config: BillingConfig,
    payments: Option<Arc<dyn domain::billing::Payments>>,
) -> Billing {
    let conn = db.migrated().await;
    let clock = Arc::new(FixedClock::new(default_now()));
    let store = domain::storage::LocalStore::open(db.data_dir().join("datasets"))
        .await
        .expect("open store");
    let domain = iops_tests::domain_billing(conn, clock.clone(), Arc::new(store), config, payments);
    Billing { db, domain, clock }
}

impl Billing {
    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// Delivers `event` signed with `secrets` at the clock's time.
    async fn deliver(&self, event: &Value, secrets: &[&str]) -> domain::Result<WebhookOutcome> {
        let body = serde_json::to_vec(event).unwrap();
        let header = stripe::signature(secrets, self.now(), &body);
        self.domain.billing.webhook(&body, Some(&header)).await
    }

    async fn user(&self, id: Id) -> users::Model {
        users::Entity::find_by_id(id)
            .one(self.domain.database().connection())
            .await
            .unwrap()
            .unwrap()
    }

    async fn tier(&self, id: Id) -> Tier {
        self.user(id).await.tier.into()
    }

    async fn events(&self) -> i64 {
        count(self.domain.database().connection(), "billing_events").await
    }
}

/// `checkout.session.completed` of a subscription checkout by `user`.
fn session_completed(id: &str, created: i64, user: Id, customer: &str) -> Value {
    stripe::event(
        id,
        "checkout.session.completed",
        created,
        json!({
            "id": "cs_test_1",
            "object": "checkout.session",
            "mode": "subscription",
            "client_reference_id": user.to_string(),
            "customer": customer,
            "subscription": "sub_1",
            "payment_status": "paid",
        }),
    )
}

on_both!(signatures_are_checked_first, signatures_body);
async fn signatures_body(db: TestDb) {
    let b = billing(db, config(), None).await;
    let event = stripe::event(
        "evt_unknown_1",
        "invoice.created",
        b.now(),
        json!({"id": "in_1"}),
    );
    let body = serde_json::to_vec(&event).unwrap();
    let now = b.now();
    let refused = [
        // The wrong secret.
        stripe::signature(&["whsec_someone_else"], now, &body),
        // Validly signed, but too old to be anything but a replay; or from the future.
        stripe::signature(&[SECRET], now - 301, &body),
        stripe::signature(&[SECRET], now + 301, &body),
        // No v1 at all, no timestamp, garbage.
        format!("t={now}"),
        "v1=00ff".to_owned(),
        "nonsense".to_owned(),
    ];
    for header in &refused {
        assert!(
            matches!(
                b.domain.billing.webhook(&body, Some(header)).await,
                Err(Error::BadRequest(_))
            ),
            "{header}"
        );
    }
    assert!(matches!(
        b.domain.billing.webhook(&body, None).await,
        Err(Error::BadRequest(_))
    ));
    // A body changed after signing.
    let header = stripe::signature(&[SECRET], now, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert!(matches!(
        b.domain.billing.webhook(&tampered, Some(&header)).await,
        Err(Error::BadRequest(_))
    ));
    // Signed but not JSON, or JSON without an id: refused after the signature.
    for junk in [
        &b"not json"[..],
        br#"{"type":"x","created":1,"data":{"object":{}}}"#,
    ] {
        let header = stripe::signature(&[SECRET], now, junk);
        assert!(matches!(
            b.domain.billing.webhook(junk, Some(&header)).await,
            Err(Error::BadRequest(_))
        ));
    }
    assert_eq!(b.events().await, 0, "nothing refused was stored");

    // Within the tolerance either way, and during a secret roll (two v1 values, the
    // first one made with the old secret): accepted.
    b.clock.set(b.clock.now() + chrono::Duration::seconds(299));
    let rolled = stripe::signature(&[OLD_SECRET, SECRET], now, &body);
    assert_eq!(
        b.domain
            .billing
            .webhook(&body, Some(&rolled))
            .await
            .unwrap(),
        WebhookOutcome::Ignored,
        "an unknown type is accepted and ignored"
    );
    let stored = billing_events::Entity::find_by_id("evt_unknown_1".to_owned())
        .one(b.domain.database().connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.event_type.as_str(), stored.outcome.as_str()),
        ("invoice.created", "ignored")
    );

    // No secret configured: refused as not configured, nothing stored.
    let unconfigured = billing(TestDb::sqlite().await, BillingConfig::new("http://x"), None).await;
    assert!(matches!(
        unconfigured.deliver(&event, &[SECRET]).await,
        Err(Error::NotConfigured(_))
    ));
    assert_eq!(unconfigured.events().await, 0);
}

on_both!(
    subscriptions_set_the_tier_once_and_in_order,
    subscriptions_body
);
async fn subscriptions_body(db: TestDb) {
    let b = billing(db, config(), None).await;
    let conn = b.domain.database().connection().clone();
    let user = new_user(&conn, Tier::Free).await;
    let t = b.now();

    // Checkout completes: the account is linked to its customer.
    assert_eq!(
        b.deliver(
            &session_completed("evt_1", t - 60, user, "cus_1"),
            &[SECRET]
        )
        .await
        .unwrap(),
        WebhookOutcome::Applied
    );
    let linked = b.user(user).await;
    assert_eq!(linked.stripe_customer_id.as_deref(), Some("cus_1"));
    assert_eq!(linked.stripe_subscription_id.as_deref(), Some("sub_1"));
    assert_eq!(b.tier(user).await, Tier::Free);

    // The subscription starts: pro.
    let created = stripe::event(
        "evt_2",
        "customer.subscription.created",
        t - 50,
        stripe::subscription("sub_1", "cus_1", "active", "price_pro", None),
    );
    assert_eq!(
        b.deliver(&created, &[SECRET]).await.unwrap(),
        WebhookOutcome::Applied
    );
    assert_eq!(b.tier(user).await, Tier::Pro);
    let status = b.domain.billing.status(user).await.unwrap();
    assert_eq!(status.subscription_status.as_deref(), Some("active"));
    assert!(status.stripe_customer_id_set);
    assert_eq!(
        status.current_period_end.map(|t| t.timestamp()),
        Some(1_900_000_000)
    );

    // Delivered again (Stripe retries): nothing changes, and concurrent redeliveries
    // too.
    b.domain
        .accounts
        .admin_update(
            &domain::Admin::local_operator(),
            user,
            Some(Tier::Team),
            None,
        )
        .await
        .unwrap();
    let again: Vec<_> = (0..8)
        .map(|_| {
            let event = created.clone();
            let body = serde_json::to_vec(&event).unwrap();
            let header = stripe::signature(&[SECRET], b.now(), &body);
            let domain = b.domain.clone();
            tokio::spawn(async move { domain.billing.webhook(&body, Some(&header)).await })
        })
        .collect();
    for task in again {
        assert_eq!(task.await.unwrap().unwrap(), WebhookOutcome::Duplicate);
    }
    assert_eq!(
        b.tier(user).await,
        Tier::Team,
        "a duplicate changed the tier"
    );

    // Upgraded to team, then cancelled; the `updated` event sent before the deletion
    // arrives last and changes nothing.
    let updated = |id: &str, created: i64, status: &str, price: &str| {
        stripe::event(
            id,
            "customer.subscription.updated",
            created,
            stripe::subscription("sub_1", "cus_1", status, price, None),
        )
    };
    assert_eq!(
        b.deliver(&updated("evt_3", t - 40, "active", "price_team"), &[SECRET])
            .await
            .unwrap(),
        WebhookOutcome::Applied
    );
    assert_eq!(b.tier(user).await, Tier::Team);
    let deleted = stripe::event(
        "evt_5",
        "customer.subscription.deleted",
        t - 20,
        stripe::subscription("sub_1", "cus_1", "canceled", "price_team", None),
    );
    assert_eq!(
        b.deliver(&deleted, &[SECRET]).await.unwrap(),
        WebhookOutcome::Applied
    );
    assert_eq!(b.tier(user).await, Tier::Free);
    assert_eq!(b.user(user).await.stripe_subscription_id, None);
    assert_eq!(
        b.deliver(&updated("evt_4", t - 30, "active", "price_pro"), &[SECRET])
            .await
            .unwrap(),
        WebhookOutcome::Stale
    );
    assert_eq!(
        b.tier(user).await,
        Tier::Free,
        "an older event undid a cancellation"
    );
    assert_eq!(
        b.domain
            .billing
            .status(user)
            .await
            .unwrap()
            .subscription_status
            .as_deref(),
        Some("canceled")
    );

    // A lapsed payment: unpaid is free; past_due keeps the tier while Stripe retries.
    assert_eq!(
        b.deliver(&updated("evt_6", t - 10, "active", "price_pro"), &[SECRET])
            .await
            .unwrap(),
        WebhookOutcome::Applied
    );
    assert_eq!(b.tier(user).await, Tier::Pro);
    b.deliver(&updated("evt_7", t - 9, "past_due", "price_pro"), &[SECRET])
        .await
        .unwrap();
    assert_eq!(b.tier(user).await, Tier::Pro);
    b.deliver(&updated("evt_8", t - 8, "unpaid", "price_pro"), &[SECRET])
        .await
        .unwrap();
    assert_eq!(b.tier(user).await, Tier::Free);

    // A customer nobody has, without a user in the metadata: ignored, recorded.
    let stranger = stripe::event(
        "evt_9",
        "customer.subscription.created",
        t,
        stripe::subscription("sub_9", "cus_nobody", "active", "price_team", None),
    );
    assert_eq!(
        b.deliver(&stranger, &[SECRET]).await.unwrap(),
        WebhookOutcome::Ignored
    );

    // A subscription whose checkout event has not arrived yet finds its user by the
    // metadata the checkout put on it.
    let newcomer = new_user(&conn, Tier::Free).await;
    let early = stripe::event(
        "evt_10",
        "customer.subscription.created",
        t,
        stripe::subscription(
            "sub_10",
            "cus_10",
            "trialing",
            "price_team",
            Some(&newcomer.to_string()),
        ),
    );
    assert_eq!(
        b.deliver(&early, &[SECRET]).await.unwrap(),
        WebhookOutcome::Applied
    );
    assert_eq!(b.tier(newcomer).await, Tier::Team);
    assert_eq!(
        b.user(newcomer).await.stripe_customer_id.as_deref(),
        Some("cus_10")
    );
    // Every accepted event is recorded once: 1 checkout + 8 subscription events + the
    // stranger's + the newcomer's (the 8 redeliveries added nothing).
    assert_eq!(b.events().await, 10);
}

on_both!(enterprise_is_never_changed_by_a_webhook, enterprise_body);
async fn enterprise_body(db: TestDb) {
    let b = billing(db, config(), None).await;
    let conn = b.domain.database().connection().clone();
    let user = new_user(&conn, Tier::Enterprise).await;
    let t = b.now();
    b.deliver(
        &session_completed("evt_e1", t - 5, user, "cus_e"),
        &[SECRET],
    )
    .await
    .unwrap();
    for (id, kind, status) in [
        ("evt_e2", "customer.subscription.created", "active"),
        ("evt_e3", "customer.subscription.deleted", "canceled"),
    ] {
        let event = stripe::event(
            id,
            kind,
            t,
            stripe::subscription("sub_e", "cus_e", status, "price_pro", None),
        );
        assert_eq!(
            b.deliver(&event, &[SECRET]).await.unwrap(),
            WebhookOutcome::Applied
        );
        assert_eq!(b.tier(user).await, Tier::Enterprise, "{kind}");
    }
}

on_both!(old_payloads_are_cleared_but_ids_kept, prune_body);
async fn prune_body(db: TestDb) {
    let b = billing(db, config(), None).await;
    let user = new_user(b.domain.database().connection(), Tier::Free).await;
    let event = session_completed("evt_p1", b.now(), user, "cus_p");
    b.deliver(&event, &[SECRET]).await.unwrap();
    assert_eq!(
        b.domain.billing.prune().await.unwrap(),
        0,
        "too young to prune"
    );

    b.clock.set(b.clock.now() + chrono::Duration::days(31));
    assert_eq!(b.domain.billing.prune().await.unwrap(), 1);
    let row = billing_events::Entity::find_by_id("evt_p1".to_owned())
        .one(b.domain.database().connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.payload, None);
    let dump = iops_tests::dump_text(b.domain.database().connection()).await;
    assert!(
        !dump.contains("cs_test_1"),
        "the payload is gone everywhere"
    );
    // A very late redelivery (signed now) is still recognised.
    let mut late = event.clone();
    late["created"] = json!(b.now());
    assert_eq!(
        b.deliver(&late, &[SECRET]).await.unwrap(),
        WebhookOutcome::Duplicate
    );
    // Housekeeping runs the same prune (nothing left to clear).
    let housekeeping = b.domain.housekeeping().await;
    assert!(
        housekeeping
            .iter()
            .any(|(what, outcome)| what.contains("billing") && matches!(outcome, Ok(0)))
    );
    // Deleting the account keeps the event (its id still stops redeliveries).
    entity::users::ActiveModel {
        id: Set(user),
        ..Default::default()
    }
    .delete(b.domain.database().connection())
    .await
    .unwrap();
    assert_eq!(b.events().await, 1);
    drop(b.db);
}

on_both!(checkouts_go_through_stripe, checkout_body);
async fn checkout_body(db: TestDb) {
    let fake = StripeFake::start();
    let b = billing(db, config(), Some(fake.client())).await;
    let conn = b.domain.database().connection().clone();
    let user = new_user(&conn, Tier::Free).await;

    let session = b.domain.billing.checkout(user, Tier::Pro).await.unwrap();
    assert!(
        session.url.starts_with("https://checkout.stripe.com/"),
        "{}",
        session.url
    );
    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {}", stripe::API_KEY).as_str())
    );
    assert_eq!(request.field("mode"), Some("subscription"));
    assert_eq!(request.field("line_items[0][price]"), Some("price_pro"));
    assert_eq!(
        request.field("client_reference_id"),
        Some(user.to_string().as_str())
    );
    assert_eq!(
        request.field("subscription_data[metadata][user_id]"),
        Some(user.to_string().as_str())
    );
    assert!(
        request
            .field("customer_email")
            .is_some_and(|e| e.ends_with("@example.com"))
    );
    assert_eq!(
        request.field("success_url"),
        Some("https://iops.example/billing?checkout=success")
    );

    // A linked account checks out as its customer.
    b.deliver(
        &session_completed("evt_c1", b.now(), user, "cus_c"),
        &[SECRET],
    )
    .await
    .unwrap();
    b.domain.billing.checkout(user, Tier::Team).await.unwrap();
    let request = fake.requests().pop().unwrap();
    assert_eq!(request.field("customer"), Some("cus_c"));
    assert_eq!(request.field("customer_email"), None);
    assert_eq!(request.field("line_items[0][price]"), Some("price_team"));

    // Not for sale, enterprise, Stripe refusing or hanging: clear errors, no secret.
    for tier in [Tier::Free, Tier::Enterprise] {
        assert!(matches!(
            b.domain.billing.checkout(user, tier).await,
            Err(Error::Validation(_))
        ));
    }
    let enterprise = new_user(&conn, Tier::Enterprise).await;
    assert!(matches!(
        b.domain.billing.checkout(enterprise, Tier::Pro).await,
        Err(Error::Conflict(_))
    ));
    fake.behave(Behaviour::Refuse);
    let refused = b
        .domain
        .billing
        .checkout(user, Tier::Pro)
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Upstream(_)), "{refused:?}");
    assert!(!format!("{refused} {refused:?}").contains(stripe::API_KEY));
    fake.behave(Behaviour::Hang(std::time::Duration::from_secs(5)));
    let hung = b
        .domain
        .billing
        .checkout(user, Tier::Pro)
        .await
        .unwrap_err();
    assert!(
        matches!(hung, Error::Upstream(ref why) if why.contains("in time")),
        "{hung:?}"
    );

    // No key, or no price for the tier: not configured.
    let keyless = billing(TestDb::sqlite().await, config(), None).await;
    assert!(matches!(
        keyless.domain.billing.checkout(user, Tier::Pro).await,
        Err(Error::NotConfigured(_))
    ));
    let priceless = billing(
        TestDb::sqlite().await,
        BillingConfig::new("http://x")
            .with_prices(BillingConfig::parse_prices("price_pro:pro").unwrap()),
        Some(fake.client()),
    )
    .await;
    assert!(matches!(
        priceless.domain.billing.checkout(user, Tier::Team).await,
        Err(Error::NotConfigured(_))
    ));
}

#[test]
fn price_lists_are_validated() {
    let parsed = BillingConfig::parse_prices(" price_a:pro ,price_b:TEAM,").unwrap();
    assert_eq!(
        parsed,
        vec![
            ("price_a".to_owned(), Tier::Pro),
            ("price_b".to_owned(), Tier::Team)
        ]
    );
    for bad in [
        "price_a",
        "price_a:gold",
        "price_a:enterprise",
        "price_a:free",
        ":pro",
        "p:pro,p:team",
    ] {
        assert!(BillingConfig::parse_prices(bad).is_err(), "{bad}");
    }
    let shown = format!("{:?}", config());
    assert!(!shown.contains(SECRET), "{shown}");
}
