//! Templates: authoring, the gallery, purchases (free, and paid through a payment port and
//! the webhook), use, and ratings exact under concurrency.
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Duration;
use domain::billing::{BillingConfig, CheckoutMode, CheckoutRequest, CheckoutSession, Payments};
use domain::{
    ChartConfig, ChartType, Domain, Error, GalleryQuery, GallerySort, Id, NewAnalysis, NewChart,
    NewTemplate, PurchaseOutcome, Template, TemplateChange, TemplateStatus, Tier,
};
use iops_tests::{TestDb, count, on_both};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::analyses::{insert_dataset, insert_user};
use crate::support::harness;

/// A user with a full name.
async fn person(db: &DatabaseConnection, name: &str) -> Id {
    let id = insert_user(db, Tier::Free).await;
    entity::users::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(id),
        full_name: Set(Some(name.to_owned())),
        ..Default::default()
    }
    .update(db)
    .await
    .expect("name the user");
    id
}

/// A dataset of `user_id` whose columns are known (as after an upload).
async fn dataset(db: &DatabaseConnection, user_id: Id, columns: &[(&str, &str)]) -> Id {
    let id = insert_dataset(db, user_id, "sales.csv").await;
    let now = chrono::Utc::now().naive_utc();
    let columns: Vec<_> = columns
        .iter()
        .map(|(name, kind)| json!({"name": name, "type": kind}))
        .collect();
    entity::dataset_columns::ActiveModel {
        dataset_id: Set(id),
        columns: Set(json!(columns)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("insert columns");
    id
}

const SALES: &[(&str, &str)] = &[("region", "string"), ("amount", "float"), ("day", "date")];

/// An analysis of `owner` over a dataset of SALES, summing `amount` by `region`, with a
/// bar chart and a table.
async fn sales_analysis(d: &Domain, conn: &DatabaseConnection, owner: Id) -> Id {
    let ds = dataset(conn, owner, SALES).await;
    let analysis = d
        .analyses
        .create(
            owner,
            NewAnalysis {
                name: "Sales by region".to_owned(),
                dataset_id: Some(ds),
                config: Some(json!({"query": {
                    "group_by": ["region"],
                    "aggregates": [{"op": "sum", "column": "amount"}],
                }})),
            },
        )
        .await
        .unwrap();
    d.charts
        .create(
            owner,
            analysis.id,
            NewChart {
                name: "Bars".to_owned(),
                chart_type: ChartType::Bar,
                config: ChartConfig {
                    x: Some("region".to_owned()),
                    y: vec!["sum_amount".to_owned()],
                    ..Default::default()
                },
            },
        )
        .await
        .unwrap();
    d.charts
        .create(
            owner,
            analysis.id,
            NewChart {
                name: "Rows".to_owned(),
                chart_type: ChartType::Table,
                config: ChartConfig::default(),
            },
        )
        .await
        .unwrap();
    analysis.id
}

fn new_template(analysis_id: Id, name: &str, price_cents: i64) -> NewTemplate {
    NewTemplate {
        analysis_id,
        name: name.to_owned(),
        description: Some("Totals per region".to_owned()),
        price_cents,
        currency: None,
    }
}

/// A published template of `author` at `price_cents`.
async fn published(
    d: &Domain,
    conn: &DatabaseConnection,
    author: Id,
    name: &str,
    price_cents: i64,
) -> Template {
    let analysis = sales_analysis(d, conn, author).await;
    let t = d
        .templates
        .create(author, new_template(analysis, name, price_cents))
        .await
        .unwrap();
    d.templates.publish(author, t.id).await.unwrap()
}

fn gallery(sort: GallerySort) -> GalleryQuery {
    GalleryQuery {
        sort,
        ..Default::default()
    }
}

fn names(page: &[Template]) -> Vec<&str> {
    page.iter().map(|t| t.name.as_str()).collect()
}

on_both!(templates_are_made_by_owners, authoring_body);
async fn authoring_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let conn = d.database().connection().clone();
    let author = person(&conn, "Ada Author").await;
    let other = person(&conn, "Otto Other").await;
    let analysis = sales_analysis(d, &conn, author).await;

    let t = d
        .templates
        .create(author, new_template(analysis, "  Regional sales  ", 0))
        .await
        .unwrap();
    assert_eq!(t.name, "Regional sales");
    assert_eq!(t.status, TemplateStatus::Draft);
    assert_eq!(t.currency, "usd");
    assert_eq!(t.author_name.as_deref(), Some("Ada Author"));
    assert_eq!(t.source_analysis_id, Some(analysis));
    assert!(t.published_at.is_none() && t.unlocked);
    assert_eq!(
        t.config.as_ref().unwrap()["query"]["group_by"],
        json!(["region"])
    );
    // Both charts (made at the same instant of the test's clock: in either order).
    let mut chart_names: Vec<_> = t.charts.iter().map(|c| c.name.as_str()).collect();
    chart_names.sort_unstable();
    assert_eq!(chart_names, ["Bars", "Rows"]);
    let bars = t.charts.iter().find(|c| c.name == "Bars").unwrap();
    assert_eq!(bars.chart_type, ChartType::Bar);
    assert_eq!(bars.config.as_ref().unwrap().x.as_deref(), Some("region"));
    // The columns the query and the charts name, with their types; `day` is not one.
    let inputs: Vec<_> = t
        .inputs
        .iter()
        .map(|c| (c.name.as_str(), serde_json::to_value(c.kind).unwrap()))
        .collect();
    assert_eq!(
        inputs,
        [("region", json!("string")), ("amount", json!("float"))]
    );

    // The rules of the input.
    for bad in [
        new_template(analysis, " ", 0),
        new_template(analysis, &"x".repeat(256), 0),
        new_template(analysis, "ok", -1),
        NewTemplate {
            currency: Some("USD".to_owned()),
            ..new_template(analysis, "ok", 100)
        },
        NewTemplate {
            description: Some("x".repeat(10_001)),
            ..new_template(analysis, "ok", 0)
        },
    ] {
        let name = bad.name.clone();
        assert!(
            matches!(
                d.templates.create(author, bad).await,
                Err(Error::Validation(_))
            ),
            "{name}"
        );
    }
    // Someone else's analysis is not there; an unknown one neither.
    assert!(matches!(
        d.templates
            .create(other, new_template(analysis, "Mine now", 0))
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.templates
            .create(author, new_template(Id::new_v4(), "Nothing", 0))
            .await,
        Err(Error::NotFound)
    ));
    // A query that reads other datasets cannot be a template.
    let tables = d
        .analyses
        .create(
            author,
            NewAnalysis {
                name: "Joins".to_owned(),
                dataset_id: None,
                config: Some(json!({"query": {"sql": "SELECT * FROM x", "tables": {"x": Id::new_v4().to_string()}}})),
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        d.templates
            .create(author, new_template(tables.id, "Joins", 0))
            .await,
        Err(Error::Validation(_))
    ));

    // A draft is its author's only.
    assert!(matches!(
        d.templates.get(Some(other), t.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.templates.get(None, t.id).await,
        Err(Error::NotFound)
    ));
    assert_eq!(d.templates.get(Some(author), t.id).await.unwrap().id, t.id);
    assert!(
        d.templates
            .gallery(&gallery(GallerySort::New))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Only the author changes, publishes and deletes (everyone else: not found).
    let change = || TemplateChange {
        name: Some("Regional sales, priced".to_owned()),
        description: Some(None),
        price_cents: Some(1500),
        currency: Some("eur".to_owned()),
    };
    assert!(matches!(
        d.templates.update(other, t.id, change()).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.templates.publish(other, t.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.templates.delete(other, t.id).await,
        Err(Error::NotFound)
    ));
    let changed = d.templates.update(author, t.id, change()).await.unwrap();
    assert_eq!(
        (
            changed.name.as_str(),
            changed.description.as_deref(),
            changed.price_cents,
            changed.currency.as_str()
        ),
        ("Regional sales, priced", None, 1500, "eur")
    );
    assert!(matches!(
        d.templates
            .update(
                author,
                t.id,
                TemplateChange {
                    price_cents: Some(-5),
                    ..Default::default()
                }
            )
            .await,
        Err(Error::Validation(_))
    ));

    let first = d.templates.publish(author, t.id).await.unwrap();
    assert_eq!(first.status, TemplateStatus::Published);
    assert_eq!(first.published_at, Some(d.now()));
    h.clock.advance(Duration::minutes(5));
    let again = d.templates.publish(author, t.id).await.unwrap();
    assert_eq!(again.published_at, first.published_at);

    // Published: anyone reads it; a paid one without its config and chart configs.
    let seen = d.templates.get(None, t.id).await.unwrap();
    assert!(!seen.unlocked && seen.config.is_none());
    assert!(seen.charts.iter().all(|c| c.config.is_none()));
    assert_eq!(seen.inputs.len(), 2);
    assert_eq!(seen.author_name.as_deref(), Some("Ada Author"));
    let seen = d.templates.get(Some(other), t.id).await.unwrap();
    assert!(!seen.unlocked);

    // Deleting the source analysis keeps the template.
    d.analyses.delete(author, analysis).await.unwrap();
    let kept = d.templates.get(Some(author), t.id).await.unwrap();
    assert_eq!(kept.source_analysis_id, None);
    assert_eq!(kept.charts.len(), 2);

    d.templates.delete(author, t.id).await.unwrap();
    assert!(matches!(
        d.templates.get(Some(author), t.id).await,
        Err(Error::NotFound)
    ));
}

on_both!(gallery_sorts_and_searches, gallery_body);
async fn gallery_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let conn = d.database().connection().clone();
    let author = person(&conn, "Grace Gallery").await;
    let alpha = published(d, &conn, author, "Alpha revenue", 0).await;
    h.clock.advance(Duration::minutes(1));
    let beta = published(d, &conn, author, "Beta churn", 0).await;
    h.clock.advance(Duration::minutes(1));
    let gamma = published(d, &conn, author, "Gamma REVENUE by day", 0).await;
    h.clock.advance(Duration::minutes(1));
    // A draft never shows.
    let draft_analysis = sales_analysis(d, &conn, author).await;
    d.templates
        .create(author, new_template(draft_analysis, "Draft revenue", 0))
        .await
        .unwrap();

    // Alpha: 3 buyers rating 3, 3, 4 (3.33); Beta: 1 buyer rating 5; Gamma: 2 buyers,
    // no rating.
    let mut buyers = Vec::new();
    for i in 0..6 {
        buyers.push(person(&conn, &format!("Buyer {i}")).await);
    }
    for (template, buyer, rating) in [
        (alpha.id, buyers[0], Some(3)),
        (alpha.id, buyers[1], Some(3)),
        (alpha.id, buyers[2], Some(4)),
        (beta.id, buyers[3], Some(5)),
        (gamma.id, buyers[4], None),
        (gamma.id, buyers[5], None),
    ] {
        let bought = d.templates.purchase(buyer, template).await.unwrap();
        assert!(matches!(bought, PurchaseOutcome::Purchased(_)));
        if let Some(rating) = rating {
            d.templates
                .rate(buyer, template, rating, None)
                .await
                .unwrap();
        }
    }

    let new = d
        .templates
        .gallery(&gallery(GallerySort::New))
        .await
        .unwrap();
    assert_eq!(
        names(&new.items),
        ["Gamma REVENUE by day", "Beta churn", "Alpha revenue"]
    );
    assert!(new.next_cursor.is_none());
    let popular = d
        .templates
        .gallery(&gallery(GallerySort::Popular))
        .await
        .unwrap();
    assert_eq!(
        names(&popular.items),
        ["Alpha revenue", "Gamma REVENUE by day", "Beta churn"]
    );
    let rated = d
        .templates
        .gallery(&gallery(GallerySort::Rating))
        .await
        .unwrap();
    assert_eq!(
        names(&rated.items),
        ["Beta churn", "Alpha revenue", "Gamma REVENUE by day"]
    );
    let a = &rated.items[1];
    assert_eq!((a.rating_count, a.purchase_count), (3, 3));
    assert!((a.rating_avg.unwrap() - 10.0 / 3.0).abs() < 1e-9);
    assert_eq!(a.author_name.as_deref(), Some("Grace Gallery"));
    assert_eq!(rated.items[2].rating_avg, None);
    // Free templates are open to all, in the gallery too.
    assert!(a.unlocked && a.config.is_some());

    // Search: case-insensitive, on the name; LIKE's wildcards are literal.
    let search = |q: &str| GalleryQuery {
        sort: GallerySort::New,
        q: Some(q.to_owned()),
        ..Default::default()
    };
    let found = d.templates.gallery(&search("revenue")).await.unwrap();
    assert_eq!(
        names(&found.items),
        ["Gamma REVENUE by day", "Alpha revenue"]
    );
    assert!(
        d.templates
            .gallery(&search("%"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        d.templates.gallery(&search(&"q".repeat(256))).await,
        Err(Error::Validation(_))
    ));

    // Pages.
    let first = d
        .templates
        .gallery(&GalleryQuery {
            sort: GallerySort::Popular,
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        names(&first.items),
        ["Alpha revenue", "Gamma REVENUE by day"]
    );
    let second = d
        .templates
        .gallery(&GalleryQuery {
            sort: GallerySort::Popular,
            limit: Some(2),
            cursor: first.next_cursor.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&second.items), ["Beta churn"]);
    assert!(second.next_cursor.is_none());
    for (limit, cursor) in [(Some(0), None), (Some(101), None), (None, Some("nope"))] {
        assert!(matches!(
            d.templates
                .gallery(&GalleryQuery {
                    limit,
                    cursor: cursor.map(str::to_owned),
                    ..Default::default()
                })
                .await,
            Err(Error::Validation(_))
        ));
    }
}

on_both!(free_templates_are_bought_used_and_rated, free_body);
async fn free_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let conn = d.database().connection().clone();
    let author = person(&conn, "Ada Author").await;
    let buyer = person(&conn, "Bea Buyer").await;
    let stranger = person(&conn, "Sam Stranger").await;
    let t = published(d, &conn, author, "Regional sales", 0).await;

    // Free: bought at once, counted in the same transaction; once only.
    let PurchaseOutcome::Purchased(purchase) = d.templates.purchase(buyer, t.id).await.unwrap()
    else {
        panic!("a free template is bought at once");
    };
    assert_eq!(
        (
            purchase.template_id,
            purchase.buyer_id,
            purchase.price_cents
        ),
        (t.id, buyer, 0)
    );
    assert!(matches!(
        d.templates.purchase(buyer, t.id).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        d.templates.purchase(author, t.id).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        d.templates.purchase(buyer, Id::new_v4()).await,
        Err(Error::NotFound)
    ));
    assert_eq!(d.templates.get(None, t.id).await.unwrap().purchase_count, 1);
    assert_eq!(count(&conn, "template_purchases").await, 1);

    // Use: a new analysis of the caller's on their dataset, with the charts.
    let own = dataset(&conn, buyer, &[("region", "string"), ("amount", "integer")]).await;
    let used = d
        .templates
        .use_template(buyer, t.id, own, Some("My sales".to_owned()))
        .await
        .unwrap();
    assert_eq!(used.analysis.name, "My sales");
    assert_eq!(used.analysis.dataset_id, Some(own));
    assert_eq!(used.analysis.config, t.config);
    let analysis = d.analyses.get(buyer, used.analysis.id).await.unwrap();
    assert_eq!(analysis.id, used.analysis.id);
    // The template's charts, in its order.
    let chart_names: Vec<_> = used.charts.iter().map(|c| c.name.as_str()).collect();
    let template_names: Vec<_> = t.charts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(chart_names, template_names);
    assert!(used.charts.iter().all(|c| c.analysis_id == analysis.id));
    let bars = used.charts.iter().find(|c| c.name == "Bars").unwrap();
    assert_eq!(bars.config.y, ["sum_amount"]);
    let listed = d
        .charts
        .list(
            buyer,
            analysis.id,
            &domain::PageRequest::new(None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    // The template's name by default; anyone may use a free template without buying it.
    let stranger_data = dataset(&conn, stranger, SALES).await;
    let by_default = d
        .templates
        .use_template(stranger, t.id, stranger_data, None)
        .await
        .unwrap();
    assert_eq!(by_default.analysis.name, "Regional sales");

    // A dataset without the inputs: the missing columns are named.
    let lacking = dataset(&conn, buyer, &[("day", "date"), ("total", "float")]).await;
    match d.templates.use_template(buyer, t.id, lacking, None).await {
        Err(Error::Validation(message)) => {
            assert!(
                message.contains("region") && message.contains("amount"),
                "{message}"
            );
            assert!(!message.contains("day"), "{message}");
        }
        other => panic!("expected the missing columns, got {other:?}"),
    }
    // Someone else's dataset is not there.
    assert!(matches!(
        d.templates
            .use_template(buyer, t.id, stranger_data, None)
            .await,
        Err(Error::NotFound)
    ));
    // An empty name is refused as when creating an analysis.
    assert!(matches!(
        d.templates
            .use_template(buyer, t.id, own, Some(" ".to_owned()))
            .await,
        Err(Error::Validation(_))
    ));

    // Ratings: buyers only, never the author; a second replaces the first.
    assert!(matches!(
        d.templates.rate(author, t.id, 5, None).await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        d.templates.rate(stranger, t.id, 5, None).await,
        Err(Error::Forbidden(_))
    ));
    for bad in [0, 6, -1] {
        assert!(matches!(
            d.templates.rate(buyer, t.id, bad, None).await,
            Err(Error::Validation(_))
        ));
    }
    let rated = d
        .templates
        .rate(buyer, t.id, 4, Some("Handy".to_owned()))
        .await
        .unwrap();
    assert_eq!((rated.rating_count, rated.rating_avg), (1, Some(4.0)));
    let rated = d.templates.rate(buyer, t.id, 2, None).await.unwrap();
    assert_eq!((rated.rating_count, rated.rating_avg), (1, Some(2.0)));
    assert_eq!(count(&conn, "template_ratings").await, 1);
    assert!(matches!(
        d.templates.rate(buyer, Id::new_v4(), 3, None).await,
        Err(Error::NotFound)
    ));

    // A draft is nobody else's to buy, use or rate.
    let draft_analysis = sales_analysis(d, &conn, author).await;
    let draft = d
        .templates
        .create(author, new_template(draft_analysis, "Draft", 0))
        .await
        .unwrap();
    assert!(matches!(
        d.templates.purchase(buyer, draft.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.templates.use_template(buyer, draft.id, own, None).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.templates.rate(buyer, draft.id, 3, None).await,
        Err(Error::NotFound)
    ));
    // Its author uses it, draft or not.
    let author_data = dataset(&conn, author, SALES).await;
    d.templates
        .use_template(author, draft.id, author_data, None)
        .await
        .unwrap();
}

/// A payment provider that records what it is asked and answers a session.
#[derive(Default)]
struct RecordingPayments {
    requests: Mutex<Vec<CheckoutRequest>>,
}

#[async_trait]
impl Payments for RecordingPayments {
    async fn create_checkout(&self, request: &CheckoutRequest) -> domain::Result<CheckoutSession> {
        let mut requests = self.requests.lock().unwrap();
        requests.push(request.clone());
        Ok(CheckoutSession {
            id: format!("cs_test_{}", requests.len()),
            url: format!(
                "https://checkout.example.com/c/pay/cs_test_{}",
                requests.len()
            ),
        })
    }
}

const WEBHOOK_SECRET: &str = "whsec_test_templates";

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner_hash = Sha256::new()
        .chain_update(&inner)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(inner_hash)
        .finalize()
        .to_vec()
}

/// Delivers a signed `checkout.session.completed` of `session` to the domain's webhook.
async fn session_completed(d: &Domain, event_id: &str, session: &str, buyer: Id, template: Id) {
    let now = d.now().timestamp();
    let payload = json!({
        "id": event_id,
        "type": "checkout.session.completed",
        "created": now,
        "data": {"object": {
            "id": session,
            "object": "checkout.session",
            "mode": "payment",
            "payment_status": "paid",
            "client_reference_id": buyer.to_string(),
            "metadata": {"template_id": template.to_string()},
        }},
    })
    .to_string();
    let signed = format!("{now}.{payload}");
    let signature = hex::encode(hmac_sha256(WEBHOOK_SECRET.as_bytes(), signed.as_bytes()));
    d.billing
        .webhook(payload.as_bytes(), Some(&format!("t={now},v1={signature}")))
        .await
        .expect("webhook");
}

on_both!(paid_templates_go_through_checkout, paid_body);
async fn paid_body(db: TestDb) {
    let h = harness(db).await;
    let conn = h.domain.database().connection().clone();
    let author = person(&conn, "Ada Author").await;
    let buyer = person(&conn, "Bea Buyer").await;
    let t = published(&h.domain, &conn, author, "Premium sales", 2500).await;

    // No payment provider: not configured, and nothing recorded.
    assert!(matches!(
        h.domain.templates.purchase(buyer, t.id).await,
        Err(Error::NotConfigured(_))
    ));

    let payments = Arc::new(RecordingPayments::default());
    let d = iops_tests::domain_billing(
        h.db.connect().await,
        h.clock.clone(),
        Arc::new(h.store.clone()),
        BillingConfig::new("https://iops.example.com/").with_webhook_secret(WEBHOOK_SECRET.into()),
        Some(payments.clone()),
    );
    let PurchaseOutcome::Checkout { url } = d.templates.purchase(buyer, t.id).await.unwrap() else {
        panic!("a paid template goes through checkout");
    };
    assert_eq!(url, "https://checkout.example.com/c/pay/cs_test_1");
    let request = payments.requests.lock().unwrap()[0].clone();
    assert_eq!(
        request.mode,
        CheckoutMode::Payment {
            amount_cents: 2500,
            currency: "usd".to_owned(),
            product_name: "Premium sales".to_owned(),
        }
    );
    assert_eq!(request.client_reference_id, buyer);
    assert_eq!(
        request.metadata,
        [("template_id".to_owned(), t.id.to_string())]
    );
    let email: String = entity::users::Entity::find_by_id(buyer)
        .one(&conn)
        .await
        .unwrap()
        .unwrap()
        .email;
    assert_eq!(request.customer_email.as_deref(), Some(email.as_str()));
    assert_eq!(
        request.success_url,
        format!(
            "https://iops.example.com/templates/{}?checkout=success",
            t.id
        )
    );
    assert!(request.cancel_url.starts_with("https://iops.example.com/"));
    assert_eq!(count(&conn, "template_purchases").await, 0);

    // Not bought yet: using it needs the purchase, rating it is refused.
    let own = dataset(&conn, buyer, SALES).await;
    assert!(matches!(
        d.templates.use_template(buyer, t.id, own, None).await,
        Err(Error::PurchaseRequired)
    ));
    assert!(matches!(
        d.templates.rate(buyer, t.id, 5, None).await,
        Err(Error::Forbidden(_))
    ));

    // The webhook records it; the same session again (another delivery of it, under a
    // new event id) changes nothing.
    session_completed(&d, "evt_1", "cs_test_1", buyer, t.id).await;
    session_completed(&d, "evt_2", "cs_test_1", buyer, t.id).await;
    assert_eq!(count(&conn, "template_purchases").await, 1);
    let after = d.templates.get(Some(buyer), t.id).await.unwrap();
    assert_eq!(after.purchase_count, 1);
    assert!(after.unlocked && after.config.is_some());
    // A second session of the same buyer is not a second purchase either.
    session_completed(&d, "evt_3", "cs_test_9", buyer, t.id).await;
    assert_eq!(count(&conn, "template_purchases").await, 1);
    // An unknown template records nothing.
    session_completed(&d, "evt_4", "cs_test_8", buyer, Id::new_v4()).await;
    assert_eq!(count(&conn, "template_purchases").await, 1);

    assert!(matches!(
        d.templates.purchase(buyer, t.id).await,
        Err(Error::Conflict(_))
    ));
    let used = d
        .templates
        .use_template(buyer, t.id, own, None)
        .await
        .unwrap();
    assert_eq!(used.charts.len(), 2);
    let rated = d.templates.rate(buyer, t.id, 5, None).await.unwrap();
    assert_eq!(rated.rating_avg, Some(5.0));
}

on_both!(concurrent_ratings_are_exact, concurrent_body);
async fn concurrent_body(db: TestDb) {
    let h = harness(db).await;
    let d = h.domain.clone();
    let other = h.second_process().await;
    let conn = d.database().connection().clone();
    let author = person(&conn, "Ada Author").await;
    let t = published(&d, &conn, author, "Popular", 0).await;
    let mut buyers = Vec::new();
    for i in 0..20 {
        let buyer = person(&conn, &format!("Buyer {i}")).await;
        buyers.push(buyer);
    }
    // Twenty purchases at once, from two processes: each counted once.
    let mut tasks = Vec::new();
    for (i, buyer) in buyers.iter().copied().enumerate() {
        let d = if i % 2 == 0 { d.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            d.templates.purchase(buyer, t.id).await
        }));
    }
    for task in tasks {
        assert!(matches!(
            task.await.unwrap().unwrap(),
            PurchaseOutcome::Purchased(_)
        ));
    }
    // Twenty ratings at once, some replaced at the same time.
    let mut tasks = Vec::new();
    for (i, buyer) in buyers.iter().copied().enumerate() {
        for rating in [1, (i % 5) as i64 + 1] {
            let d = if i % 2 == 0 { d.clone() } else { other.clone() };
            tasks.push(tokio::spawn(async move {
                (rating, d.templates.rate(buyer, t.id, rating, None).await)
            }));
        }
    }
    let mut last_seen = 0;
    for task in tasks {
        let (_, result) = task.await.unwrap();
        let rated = result.unwrap();
        assert!(rated.rating_count <= 20);
        last_seen = last_seen.max(rated.rating_count);
    }
    assert_eq!(last_seen, 20);
    // Each buyer's one rating is whichever of their two writes came last: recompute the
    // truth from the rows, and compare with the stats kept on the template.
    let rows = entity::template_ratings::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    let sum: i64 = rows.iter().map(|r| i64::from(r.rating)).sum();
    let after = d.templates.get(None, t.id).await.unwrap();
    assert_eq!(after.rating_count, 20);
    assert_eq!(after.purchase_count, 20);
    assert!((after.rating_avg.unwrap() - sum as f64 / 20.0).abs() < 1e-9);

    // Twenty distinct ratings at once: the exact mean.
    let mut tasks = Vec::new();
    for (i, buyer) in buyers.iter().copied().enumerate() {
        let d = if i % 2 == 0 { d.clone() } else { other.clone() };
        let rating = (i % 5) as i64 + 1;
        tasks.push(tokio::spawn(async move {
            d.templates.rate(buyer, t.id, rating, None).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let after = d.templates.get(None, t.id).await.unwrap();
    assert_eq!(after.rating_count, 20);
    // 4 × (1 + 2 + 3 + 4 + 5) / 20 = 3.
    assert_eq!(after.rating_avg, Some(3.0));
}
