//! Domain tests: charts, embeds, embed keys and embed analytics.
use chrono::Duration;
use domain::{
    AnalysisChange, ChartChange, ChartConfig, ChartType, Domain, EmbedMode, Error, Id, NewChart,
    NewReport, PageRequest, Tier, Unauthenticated, Visit,
};
use iops_tests::{TestDb, count, on_both};
use serde_json::json;

use crate::analyses::{insert_user, named};
use crate::support::harness;

/// Results in the documented `{columns, rows}` shape.
fn sales_results() -> serde_json::Value {
    json!({
        "columns": [{"name": "region", "type": "string"}, {"name": "sales", "type": "float"}],
        "rows": [["north", 10.5], ["south", 7.25], ["east", 3.0]],
        "row_count": 3,
        "truncated": false
    })
}

/// A user with an analysis holding `sales_results()`.
async fn owner_with_results(d: &Domain) -> (Id, Id) {
    let user = insert_user(d.database().connection(), Tier::Pro).await;
    let analysis = d
        .analyses
        .create(user, named("regional sales"))
        .await
        .unwrap();
    d.analyses
        .update(
            user,
            analysis.id,
            AnalysisChange {
                results: Some(Some(sales_results())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (user, analysis.id)
}

fn bar(x: &str, y: &str) -> NewChart {
    NewChart {
        name: "Sales by region".to_owned(),
        chart_type: ChartType::Bar,
        config: ChartConfig {
            x: Some(x.to_owned()),
            y: vec![y.to_owned()],
            ..Default::default()
        },
    }
}

fn first_page() -> PageRequest {
    PageRequest::new(None, None).unwrap()
}

on_both!(chart_crud_validation_and_ownership, chart_crud_body);
async fn chart_crud_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_results(d).await;
    let (mallory, _) = owner_with_results(d).await;

    let chart = d
        .charts
        .create(user, analysis, bar("region", "sales"))
        .await
        .unwrap();
    assert_eq!(chart.chart_type, ChartType::Bar);
    assert_eq!(chart.embed, None);
    assert_eq!(d.charts.get(user, chart.id).await.unwrap(), chart);

    // An unknown column is named; nothing is written.
    let err = d
        .charts
        .create(user, analysis, bar("region", "profit"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation(m) if m.contains("\"profit\"")),
        "{err:?}"
    );
    // What each type needs.
    h.clock.advance(Duration::seconds(1));
    let table = NewChart {
        name: "All rows".into(),
        chart_type: ChartType::Table,
        config: ChartConfig::default(),
    };
    d.charts.create(user, analysis, table).await.unwrap();
    let number_without_y = NewChart {
        name: "Total".into(),
        chart_type: ChartType::Number,
        config: ChartConfig::default(),
    };
    assert!(matches!(
        d.charts.create(user, analysis, number_without_y).await,
        Err(Error::Validation(_))
    ));
    assert_eq!(count(d.database().connection(), "charts").await, 2);

    // Someone else's analysis or chart: not found, whatever the operation.
    assert!(matches!(
        d.charts
            .create(mallory, analysis, bar("region", "sales"))
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.charts.get(mallory, chart.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.charts.image(mallory, chart.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.charts.delete(mallory, chart.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.charts.list(mallory, analysis, &first_page()).await,
        Err(Error::NotFound)
    ));

    // Update: the result is checked as a whole.
    let err = d
        .charts
        .update(
            user,
            chart.id,
            ChartChange {
                chart_type: Some(ChartType::Pie),
                config: Some(ChartConfig {
                    x: Some("region".into()),
                    y: vec!["nope".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)));
    let pie = d
        .charts
        .update(
            user,
            chart.id,
            ChartChange {
                name: Some("  Share  ".into()),
                chart_type: Some(ChartType::Pie),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (pie.name.as_str(), pie.chart_type),
        ("Share", ChartType::Pie)
    );

    let page = d.charts.list(user, analysis, &first_page()).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[1].id, chart.id, "newest first");

    // The image is drawn from the current results and names what it draws.
    let svg = d.charts.image(user, chart.id).await.unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
    assert!(svg.contains("Share") && svg.contains("north"));

    // Deleting the analysis deletes its charts.
    d.analyses.delete(user, analysis).await.unwrap();
    assert_eq!(count(d.database().connection(), "charts").await, 0);
}

on_both!(embeds_freeze_rotate_and_stop, embeds_body);
async fn embeds_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_results(d).await;
    let chart = d
        .charts
        .create(user, analysis, bar("region", "sales"))
        .await
        .unwrap();

    let embed = d
        .embeds
        .publish(
            user,
            chart.id,
            EmbedMode::Public,
            vec!["https://Blog.example.com/".into()],
        )
        .await
        .unwrap();
    assert!((8..=20).contains(&embed.code.len()));
    assert_eq!(embed.allowed_origins, ["https://blog.example.com"]);
    let view = d.embeds.open(&embed.code, None, None).await.unwrap();
    assert_eq!(view.data.rows.len(), 3);
    assert_eq!(view.name, "Sales by region");

    // Later runs and edits change nothing the embed shows...
    d.analyses
        .update(
            user,
            analysis,
            AnalysisChange {
                results: Some(Some(
                    json!({"columns": ["region", "sales"], "rows": [["west", 1]]}),
                )),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    d.charts
        .update(
            user,
            chart.id,
            ChartChange {
                name: Some("Renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let frozen = d.embeds.open(&embed.code, None, None).await.unwrap();
    assert_eq!(frozen.name, "Sales by region");
    assert_eq!(frozen.data.rows, view.data.rows);
    // ...until it is published again, which keeps the code.
    h.clock.advance(Duration::minutes(1));
    let again = d
        .embeds
        .publish(user, chart.id, EmbedMode::Public, vec![])
        .await
        .unwrap();
    assert_eq!(again.code, embed.code);
    assert!(again.published_at > embed.published_at);
    let fresh = d.embeds.open(&embed.code, None, None).await.unwrap();
    assert_eq!(fresh.name, "Renamed");
    assert_eq!(fresh.data.rows, vec![vec![json!("west"), json!(1)]]);
    assert!(fresh.svg().contains("west"));

    // Rotate: a new code; the old one is gone for ever.
    let rotated = d.embeds.rotate(user, chart.id).await.unwrap();
    assert_ne!(rotated.code, embed.code);
    assert!(matches!(
        d.embeds.open(&embed.code, None, None).await,
        Err(Error::NotFound)
    ));
    d.embeds.open(&rotated.code, None, None).await.unwrap();

    // Stop: not found; publishing again gives a code never seen before.
    d.embeds.stop(user, chart.id).await.unwrap();
    assert!(matches!(
        d.embeds.open(&rotated.code, None, None).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.embeds.stop(user, chart.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.embeds.rotate(user, chart.id).await,
        Err(Error::NotFound)
    ));
    let republished = d
        .embeds
        .publish(user, chart.id, EmbedMode::Public, vec![])
        .await
        .unwrap();
    assert!(![embed.code.as_str(), rotated.code.as_str()].contains(&republished.code.as_str()));
    // Every code ever issued stays reserved.
    assert!(count(d.database().connection(), "embed_codes").await >= 3);

    // Someone else cannot publish, stop or rotate it; bad origins change nothing.
    let mallory = insert_user(d.database().connection(), Tier::Pro).await;
    assert!(matches!(
        d.embeds
            .publish(mallory, chart.id, EmbedMode::Public, vec![])
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.embeds.stop(mallory, chart.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.embeds
            .publish(
                user,
                chart.id,
                EmbedMode::Public,
                vec!["https://a.com/path".into()]
            )
            .await,
        Err(Error::Validation(_))
    ));
    d.embeds.open(&republished.code, None, None).await.unwrap();
}

/// A token as a customer's server would sign it.
fn token(kid: &str, secret: &str, claims: serde_json::Value) -> String {
    let header = jsonwebtoken::Header {
        kid: Some(kid.to_owned()),
        ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
    };
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn b64(value: serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

on_both!(signed_embeds_check_their_tokens, signed_body);
async fn signed_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_results(d).await;
    let chart = d
        .charts
        .create(user, analysis, bar("region", "sales"))
        .await
        .unwrap();
    let embed = d
        .embeds
        .publish(user, chart.id, EmbedMode::Signed, vec![])
        .await
        .unwrap();
    let key = d.embeds.create_key(user).await.unwrap();
    assert_eq!(d.embeds.list_keys(user).await.unwrap()[0].kid, key.kid);
    // The secret is stored encrypted, never as given.
    use sea_orm::EntityTrait;
    let stored: Vec<String> = entity::embed_keys::Entity::find()
        .all(d.database().connection())
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.secret_encrypted)
        .collect();
    assert_eq!(stored.len(), 1);
    assert!(stored.iter().all(|s| !s.contains(&key.secret)));

    let now = d.now().timestamp();
    let code = embed.code.as_str();
    let good = token(
        &key.kid,
        &key.secret,
        json!({"sub": code, "exp": now + 600}),
    );
    d.embeds.open(code, Some(&good), None).await.unwrap();
    // Within the 60 s leeway.
    let just_expired = token(&key.kid, &key.secret, json!({"sub": code, "exp": now - 30}));
    d.embeds
        .open(code, Some(&just_expired), None)
        .await
        .unwrap();

    let other = insert_user(d.database().connection(), Tier::Pro).await;
    let foreign = d.embeds.create_key(other).await.unwrap();
    let none_token = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": key.kid})),
        b64(json!({"sub": code, "exp": now + 600}))
    );
    let hs512 = {
        let header = jsonwebtoken::Header {
            kid: Some(key.kid.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512)
        };
        jsonwebtoken::encode(
            &header,
            &json!({"sub": code, "exp": now + 600}),
            &jsonwebtoken::EncodingKey::from_secret(key.secret.as_bytes()),
        )
        .unwrap()
    };
    let refused = [
        ("missing", None),
        ("garbage", Some("not.a.token".to_owned())),
        (
            "expired",
            Some(token(
                &key.kid,
                &key.secret,
                json!({"sub": code, "exp": now - 120}),
            )),
        ),
        (
            "no exp",
            Some(token(&key.kid, &key.secret, json!({"sub": code}))),
        ),
        (
            "exp beyond 24 h",
            Some(token(
                &key.kid,
                &key.secret,
                json!({"sub": code, "exp": now + 25 * 3600}),
            )),
        ),
        (
            "other code",
            Some(token(
                &key.kid,
                &key.secret,
                json!({"sub": "AAAAAAAAAA", "exp": now + 600}),
            )),
        ),
        (
            "wrong signature",
            Some(token(
                &key.kid,
                "eks_wrong",
                json!({"sub": code, "exp": now + 600}),
            )),
        ),
        (
            "unknown kid",
            Some(token(
                "ek_nope",
                &key.secret,
                json!({"sub": code, "exp": now + 600}),
            )),
        ),
        (
            "another owner's key",
            Some(token(
                &foreign.kid,
                &foreign.secret,
                json!({"sub": code, "exp": now + 600}),
            )),
        ),
        ("alg none", Some(none_token)),
        ("HS512", Some(hs512)),
    ];
    for (why, token) in refused {
        let outcome = d.embeds.open(code, token.as_deref(), None).await;
        assert!(
            matches!(
                outcome,
                Err(Error::Unauthorized(Unauthenticated::EmbedToken))
            ),
            "{why}: {outcome:?}"
        );
    }

    // Revoking the key refuses its tokens from the next request on, in every process.
    let other_process = h.second_process().await;
    other_process
        .embeds
        .open(code, Some(&good), None)
        .await
        .unwrap();
    d.embeds.revoke_key(user, &key.kid).await.unwrap();
    assert!(matches!(
        other_process.embeds.open(code, Some(&good), None).await,
        Err(Error::Unauthorized(_))
    ));
    assert!(matches!(
        d.embeds.revoke_key(user, &key.kid).await,
        Err(Error::NotFound)
    ));
}

fn visit(client: &str, referrer: Option<&str>) -> Visit {
    Visit {
        client: client.to_owned(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0".to_owned(),
        referrer: referrer.map(str::to_owned),
        framed: false,
    }
}

on_both!(embed_views_count_exactly_and_privately, analytics_body);
async fn analytics_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_results(d).await;
    let chart = d
        .charts
        .create(user, analysis, bar("region", "sales"))
        .await
        .unwrap();
    let embed = d
        .embeds
        .publish(user, chart.id, EmbedMode::Public, vec![])
        .await
        .unwrap();
    let other_process = h.second_process().await;

    // 200 views at once, half through each "process": 20 visitors, 2 referrer hosts, and
    // views without a referrer.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let domain = if i % 2 == 0 {
            d.clone()
        } else {
            other_process.clone()
        };
        let code = embed.code.clone();
        let client = format!("203.0.113.{}", i % 20);
        let referrer = match i % 4 {
            0 => Some("https://Blog.Example.com:8443/posts/secret-path?q=1"),
            1 => Some("https://news.example.org/"),
            _ => None,
        };
        tasks.push(tokio::spawn(async move {
            domain
                .embeds
                .open(&code, None, Some(&visit(&client, referrer)))
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // The JSON view does not count.
    d.embeds.open(&embed.code, None, None).await.unwrap();

    let days = d
        .embeds
        .analytics(user, chart.id, None, None)
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    let day = &days[0];
    assert_eq!(day.day, d.now().date_naive());
    assert_eq!(day.views, 200);
    assert_eq!(day.referrers["blog.example.com"], 50);
    assert_eq!(day.referrers["news.example.org"], 50);
    assert_eq!(day.referrers[""], 100);
    // Visitor i%20 with referrer kind i%4: blog gets clients {0,4,8,12,16} (5), news
    // {1,5,9,13,17} (5), none gets the 10 with i%4 in {2,3}: unique summed over hosts = 20.
    assert_eq!(day.unique_visitors, 20);

    // Nothing identifying is stored anywhere.
    let dump = iops_tests::dump_text(d.database().connection()).await;
    for secret in ["203.0.113.", "TestBrowser", "secret-path", "Mozilla"] {
        assert!(!dump.contains(secret), "{secret} is stored");
    }

    // Ranges: validated; days with views only.
    let today = d.now().date_naive();
    assert!(matches!(
        d.embeds
            .analytics(user, chart.id, Some(today), Some(today - Duration::days(1)))
            .await,
        Err(Error::Validation(_))
    ));
    assert!(matches!(
        d.embeds
            .analytics(
                user,
                chart.id,
                Some(today - Duration::days(366)),
                Some(today)
            )
            .await,
        Err(Error::Validation(_))
    ));
    assert!(
        d.embeds
            .analytics(
                user,
                chart.id,
                Some(today - Duration::days(365)),
                Some(today - Duration::days(1))
            )
            .await
            .unwrap()
            .is_empty()
    );
    let mallory = insert_user(d.database().connection(), Tier::Pro).await;
    assert!(matches!(
        d.embeds.analytics(mallory, chart.id, None, None).await,
        Err(Error::NotFound)
    ));

    // Two days later the first day's salt and visitor hashes are gone: the same visitor
    // can no longer be linked to that day.
    assert_eq!(count(d.database().connection(), "embed_salts").await, 1);
    h.clock.advance(Duration::days(2));
    d.embeds
        .open(&embed.code, None, Some(&visit("203.0.113.1", None)))
        .await
        .unwrap();
    let conn = d.database().connection();
    assert_eq!(count(conn, "embed_salts").await, 1, "only today's salt");
    assert_eq!(
        count(conn, "embed_visitors").await,
        1,
        "only today's visitor"
    );
    let days = d
        .embeds
        .analytics(user, chart.id, Some(today), None)
        .await
        .unwrap();
    assert_eq!(
        days.iter()
            .map(|d| (d.views, d.unique_visitors))
            .collect::<Vec<_>>(),
        [(200, 20), (1, 1)]
    );
}

on_both!(reports_show_charts_and_count_once, report_body);
async fn report_body(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let (user, analysis) = owner_with_results(d).await;
    let first = d
        .charts
        .create(user, analysis, bar("region", "sales"))
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(1));
    let line = NewChart {
        name: "Trend".into(),
        chart_type: ChartType::Line,
        ..bar("region", "sales")
    };
    let second = d.charts.create(user, analysis, line).await.unwrap();
    let report = d
        .reports
        .create(user, analysis, NewReport::default())
        .await
        .unwrap();
    let view = d.reports.view(&report.short_code, None).await.unwrap();
    assert_eq!(view.view_count, 1);
    let ids: Vec<Id> = view.charts.iter().map(|c| c.id).collect();
    assert_eq!(ids, [first.id, second.id], "oldest first");
    let drawings = view.drawings();
    assert_eq!(drawings.len(), 2);
    assert!(drawings[0].1.contains("Sales by region") && drawings[1].1.contains("Trend"));
    let again = d.reports.view(&report.short_code, None).await.unwrap();
    assert_eq!(again.view_count, 2, "one view, one count");
}
