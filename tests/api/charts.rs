//! Charts, embeds, embed keys and embed analytics over HTTP: every endpoint and status,
//! the SVG (parsed by a real XML parser), the embed page's headers, signed tokens, and
//! exact counting across two server processes.
use futures_util::future::join_all;
use iops_tests::{TestDb, on_both};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::analyses::create_analysis;
use crate::reports::create_report;
use crate::support::{TestApp, assert_problem, spawn};

const HOSTILE: &str = "</text><script>alert(1)</script>\" onload=\"x";

/// A logged-in user with an analysis holding results; returns `(token, analysis id)`.
async fn owner(app: &TestApp, email: &str) -> (String, String) {
    let (_, token) = app.user(email).await;
    let analysis = create_analysis(app, &token, &json!({"name": "Regional sales"})).await;
    let id = analysis["id"].as_str().unwrap().to_owned();
    let res = app
        .patch(
            &format!("/api/v1/analyses/{id}"),
            Some(&token),
            &json!({"results": {
                "columns": [
                    {"name": "region", "type": "string"},
                    {"name": "sales", "type": "float"},
                    {"name": HOSTILE, "type": "integer"}
                ],
                "rows": [["north", 10.5, 1], ["south", 7.25, 2], [HOSTILE, 3.0, 3]]
            }}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    (token, id)
}

async fn create_chart(app: &TestApp, token: &str, analysis: &str, body: Value) -> Value {
    let res = app
        .post(
            &format!("/api/v1/analyses/{analysis}/charts"),
            Some(token),
            &body,
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "create chart {body}");
    assert!(res.headers().contains_key(header::LOCATION));
    res.json().await.unwrap()
}

fn bar(name: &str) -> Value {
    json!({"name": name, "chart_type": "bar", "config": {"x": "region", "y": ["sales"]}})
}

/// Well-formed XML, no script element, no event attribute, no `javascript:`; returns the
/// decoded text content.
fn assert_safe_svg(svg: &str) -> String {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("SVG does not parse: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let mut text = String::new();
    for node in doc.descendants() {
        if node.is_element() {
            assert_ne!(node.tag_name().name(), "script");
            for attr in node.attributes() {
                assert!(
                    !attr.name().starts_with("on"),
                    "event attribute {}",
                    attr.name()
                );
                assert!(!attr.value().contains("javascript:"));
            }
        }
        if let Some(t) = node.text() {
            text.push_str(t);
            text.push('\n');
        }
    }
    text
}

on_both!(chart_endpoints_and_statuses, chart_endpoints_body);
async fn chart_endpoints_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner(&app, "ada@example.com").await;
    let (other, _) = owner(&app, "mallory@example.com").await;

    let chart = create_chart(&app, &token, &analysis, bar("Sales by region")).await;
    let id = chart["id"].as_str().unwrap();
    assert_eq!(chart["chart_type"], "bar");
    assert_eq!(chart["config"], json!({"x": "region", "y": ["sales"]}));
    assert_eq!(chart["embed"], Value::Null);

    // 422: unknown column (named), unknown type, unknown field, missing x; 404 for others.
    let path = format!("/api/v1/analyses/{analysis}/charts");
    let res = app
        .post(
            &path,
            Some(&token),
            &json!({"name": "x", "chart_type": "bar", "config": {"x": "region", "y": ["profit"]}}),
        )
        .await;
    let body = assert_problem(res, 422, "validation").await;
    assert!(
        body["detail"].as_str().unwrap().contains("profit"),
        "{body}"
    );
    for bad in [
        json!({"name": "x", "chart_type": "donut", "config": {}}),
        json!({"name": "x", "chart_type": "bar", "config": {"x": "region", "y": ["sales"], "colour": "red"}}),
        json!({"name": "x", "chart_type": "bar", "config": {"y": ["sales"]}}),
        json!({"name": "", "chart_type": "table", "config": {}}),
    ] {
        let res = app.post(&path, Some(&token), &bad).await;
        assert_problem(res, 422, "validation").await;
    }
    assert_problem(
        app.post(&path, Some(&other), &bar("mine now")).await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post(&path, None, &bar("anon")).await,
        401,
        "unauthorized",
    )
    .await;

    // List, get, patch, image.
    let list: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["next_cursor"], Value::Null);
    let chart_path = format!("/api/v1/charts/{id}");
    let got: Value = app
        .get(&chart_path, Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "Sales by region");
    assert_problem(app.get(&chart_path, Some(&other)).await, 404, "not-found").await;
    assert_problem(
        app.get("/api/v1/charts/not-a-uuid", Some(&token)).await,
        422,
        "validation",
    )
    .await;
    let res = app
        .patch(&chart_path, Some(&token), &json!({"chart_type": "line", "config": {"x": "region", "y": ["sales"], "title": HOSTILE}}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_problem(
        app.patch(&chart_path, Some(&token), &json!({"name": null}))
            .await,
        422,
        "validation",
    )
    .await;

    let res = app
        .get(&format!("{chart_path}/image.svg"), Some(&token))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let svg = res.text().await.unwrap();
    let text = assert_safe_svg(&svg);
    assert!(
        text.contains(HOSTILE.trim()) || text.contains("</text><script>"),
        "hostile title shown as text"
    );
    assert!(text.contains("north"));
    // Stable output for the same input.
    let again = app
        .get(&format!("{chart_path}/image.svg"), Some(&token))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(svg, again);
    assert_problem(
        app.get(&format!("{chart_path}/image.svg"), Some(&other))
            .await,
        404,
        "not-found",
    )
    .await;

    // A table chart naming the hostile column draws it as text.
    let table = create_chart(
        &app,
        &token,
        &analysis,
        json!({"name": "All", "chart_type": "table", "config": {"y": ["region", HOSTILE]}}),
    )
    .await;
    let svg = app
        .get(
            &format!("/api/v1/charts/{}/image.svg", table["id"].as_str().unwrap()),
            Some(&token),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_safe_svg(&svg);

    // Delete.
    assert_problem(
        app.delete(&chart_path, Some(&other)).await,
        404,
        "not-found",
    )
    .await;
    assert_eq!(
        app.delete(&chart_path, Some(&token)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(app.get(&chart_path, Some(&token)).await, 404, "not-found").await;
}

async fn publish(app: &TestApp, token: &str, chart: &str, body: Value) -> Value {
    let res = app
        .post(&format!("/api/v1/charts/{chart}/embed"), Some(token), &body)
        .await;
    assert_eq!(res.status(), StatusCode::OK, "publish {body}");
    res.json().await.unwrap()
}

on_both!(embeds_over_http, embeds_body);
async fn embeds_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner(&app, "ada@example.com").await;
    let chart = create_chart(&app, &token, &analysis, bar("Sales")).await;
    let id = chart["id"].as_str().unwrap();

    let embed = publish(
        &app,
        &token,
        id,
        json!({"mode": "public", "allowed_origins": ["https://blog.example.com", "http://localhost:8080"]}),
    )
    .await;
    let code = embed["embed_code"].as_str().unwrap().to_owned();
    assert_eq!(embed["embed_url"], format!("/e/{code}"));
    assert_eq!(embed["mode"], "public");
    assert!(embed["published_at"].is_string());
    let got: Value = app
        .get(&format!("/api/v1/charts/{id}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["embed"]["embed_code"], code);

    // A frame the browser will refuse (its page is not an allowed origin) is no view; one
    // from an allowed page is.
    for referrer in [
        "https://evil.example.com/page",
        "https://blog.example.com/post",
    ] {
        let res = app
            .request(Method::GET, &format!("/e/{code}"), None)
            .header("sec-fetch-dest", "iframe")
            .header(header::REFERER, referrer)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let stats: Value = app
        .get(&format!("/api/v1/charts/{id}/analytics"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["days"][0]["referrers"],
        json!({"blog.example.com": 1}),
        "{stats}"
    );

    // The page: inline SVG, no script, framing only from the listed origins.
    let res = app.get(&format!("/e/{code}"), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.ends_with("frame-ancestors https://blog.example.com http://localhost:8080"),
        "{csp}"
    );
    assert!(!res.headers().contains_key("x-frame-options"));
    let page = res.text().await.unwrap();
    assert!(page.contains("<svg") && !page.contains("<script"));
    let svg_res = app.get(&format!("/e/{code}.svg"), None).await;
    assert_eq!(svg_res.headers()[header::CONTENT_TYPE], "image/svg+xml");
    assert_safe_svg(&svg_res.text().await.unwrap());
    let data: Value = app
        .get(&format!("/e/{code}.json"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(data["name"], "Sales");
    assert_eq!(data["chart_type"], "bar");
    assert_eq!(
        data["columns"],
        json!([{"name": "region", "type": "string"}, {"name": "sales", "type": "float"}])
    );
    assert_eq!(data["rows"].as_array().unwrap().len(), 3);

    // No origins listed: any site may frame it.
    publish(&app, &token, id, json!({"mode": "public"})).await;
    let res = app.get(&format!("/e/{code}"), None).await;
    assert!(
        res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .ends_with("frame-ancestors *")
    );

    // Bad publish bodies change nothing.
    for bad in [
        json!({"mode": "secret"}),
        json!({"mode": "public", "allowed_origins": ["https://a.com/x"]}),
        json!({"mode": "public", "allowed_origins": ["https://a.com; script-src *"]}),
        json!({"mode": "public", "extra": 1}),
    ] {
        let res = app
            .post(&format!("/api/v1/charts/{id}/embed"), Some(&token), &bad)
            .await;
        assert_problem(res, 422, "validation").await;
    }
    assert_eq!(
        app.get(&format!("/e/{code}"), None).await.status(),
        StatusCode::OK
    );

    // Rotate: 200 with a new code; the old one is 404 in all three forms.
    let res = app
        .post(
            &format!("/api/v1/charts/{id}/embed/rotate"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let new_code = rotated["embed_code"].as_str().unwrap().to_owned();
    assert_ne!(new_code, code);
    for suffix in ["", ".svg", ".json"] {
        assert_eq!(
            app.get(&format!("/e/{code}{suffix}"), None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get(&format!("/e/{new_code}{suffix}"), None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    // Stop: 204, then 404; stopping again is 404.
    assert_eq!(
        app.delete(&format!("/api/v1/charts/{id}/embed"), Some(&token))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/e/{new_code}"), None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_problem(
        app.delete(&format!("/api/v1/charts/{id}/embed"), Some(&token))
            .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post(
            &format!("/api/v1/charts/{id}/embed/rotate"),
            Some(&token),
            &json!({}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    // Codes that could never be ours.
    for bogus in [
        "/e/..%2F..%2Fetc",
        "/e/abc-def",
        "/e/aaaaaaaaaaaaaaaaaaaaa.svg",
    ] {
        assert_eq!(
            app.get(bogus, None).await.status(),
            StatusCode::NOT_FOUND,
            "{bogus}"
        );
    }
}

fn sign(kid: &str, secret: &str, claims: Value, alg: jsonwebtoken::Algorithm) -> String {
    let header = jsonwebtoken::Header {
        kid: Some(kid.to_owned()),
        ..jsonwebtoken::Header::new(alg)
    };
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

on_both!(signed_embeds_over_http, signed_body);
async fn signed_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner(&app, "ada@example.com").await;
    let chart = create_chart(&app, &token, &analysis, bar("Sales")).await;
    let id = chart["id"].as_str().unwrap();
    let embed = publish(&app, &token, id, json!({"mode": "signed"})).await;
    let code = embed["embed_code"].as_str().unwrap().to_owned();

    let res = app
        .post("/api/v1/me/embed-keys", Some(&token), &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let key: Value = res.json().await.unwrap();
    let (kid, secret) = (
        key["kid"].as_str().unwrap(),
        key["secret"].as_str().unwrap(),
    );
    let listed: Value = app
        .get("/api/v1/me/embed-keys", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["kid"], kid);
    assert!(
        !listed.to_string().contains(secret),
        "the secret is shown once only"
    );

    let now = app.clock_now().timestamp();
    let hs256 = jsonwebtoken::Algorithm::HS256;
    let good = sign(kid, secret, json!({"sub": code, "exp": now + 300}), hs256);
    for suffix in ["", ".svg", ".json"] {
        let res = app
            .get(&format!("/e/{code}{suffix}?token={good}"), None)
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{suffix}");
        let res = app.get(&format!("/e/{code}{suffix}"), None).await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "{suffix} without a token"
        );
    }
    let none = {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(json!({"alg": "none", "kid": kid})),
            b64(json!({"sub": code, "exp": now + 300}))
        )
    };
    for (why, bad) in [
        (
            "expired",
            sign(kid, secret, json!({"sub": code, "exp": now - 3600}), hs256),
        ),
        ("no exp", sign(kid, secret, json!({"sub": code}), hs256)),
        (
            "wrong kid",
            sign(
                "ek_unknown",
                secret,
                json!({"sub": code, "exp": now + 300}),
                hs256,
            ),
        ),
        (
            "wrong signature",
            sign(
                kid,
                "not-the-secret",
                json!({"sub": code, "exp": now + 300}),
                hs256,
            ),
        ),
        ("alg none", none),
    ] {
        let res = app.get(&format!("/e/{code}.json?token={bad}"), None).await;
        let body = assert_problem(res, 401, "unauthorized").await;
        assert!(!body.to_string().contains(secret), "{why}");
        let res = app.get(&format!("/e/{code}?token={bad}"), None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{why}");
        assert!(
            res.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }

    // Revoke: 204, the token stops working, revoking again is 404.
    assert_eq!(
        app.delete(&format!("/api/v1/me/embed-keys/{kid}"), Some(&token))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/e/{code}?token={good}"), None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_problem(
        app.delete(&format!("/api/v1/me/embed-keys/{kid}"), Some(&token))
            .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post("/api/v1/me/embed-keys", None, &json!({})).await,
        401,
        "unauthorized",
    )
    .await;
}

on_both!(embed_views_count_exactly_across_processes, counting_body);
async fn counting_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner(&app, "ada@example.com").await;
    let chart = create_chart(&app, &token, &analysis, bar("Sales")).await;
    let id = chart["id"].as_str().unwrap();
    let code = publish(&app, &token, id, json!({"mode": "public"})).await["embed_code"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second server process on the same database.
    let second = iops_tests::domain(
        app.db.connect().await,
        app.clock.clone(),
        std::sync::Arc::new(app.store.clone()),
        app.domain.settings().clone(),
    );
    let (addr2, handle2) = iops_tests::serve(second, &api::http::ServerOptions::default());
    let base2 = format!("http://{addr2}");

    let requests = (0..200).map(|i| {
        let url = if i % 2 == 0 {
            app.url(&format!("/e/{code}"))
        } else {
            format!("{base2}/e/{code}.svg")
        };
        let referrer = if i % 4 < 2 {
            "https://Blog.Example.com:8443/private/page?x=1"
        } else {
            ""
        };
        let mut req = app
            .client
            .request(Method::GET, url)
            .header(header::USER_AGENT, format!("TestAgent/{}", i % 10));
        if !referrer.is_empty() {
            req = req.header(header::REFERER, referrer);
        }
        req.send()
    });
    for res in join_all(requests).await {
        assert_eq!(res.unwrap().status(), StatusCode::OK);
    }
    // `.json` is not a view.
    app.get(&format!("/e/{code}.json"), None).await;
    handle2.stop(true).await;

    let res = app
        .get(&format!("/api/v1/charts/{id}/analytics"), Some(&token))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{body}");
    assert_eq!(days[0]["views"], 200);
    assert_eq!(
        days[0]["referrers"],
        json!({"blog.example.com": 100, "": 100})
    );
    // One address (127.0.0.1), ten user agents, each seen with and without a referrer.
    assert_eq!(days[0]["unique_visitors"], 20);
    // Nothing of the requests is kept by the embed tables (the login throttle keeps
    // addresses of failed logins by design, so the check is on what embeds wrote).
    let dump = iops_tests::dump_text(app.domain.database().connection()).await;
    let embed_rows: String = dump
        .lines()
        .filter(|l| l.starts_with("embed") || l.starts_with("chart"))
        .collect();
    assert!(embed_rows.contains("blog.example.com"));
    for private in [
        "TestAgent",
        "/private/page",
        "127.0.0.1",
        "Blog.Example.com",
    ] {
        assert!(!embed_rows.contains(private), "{private} is stored");
    }
    assert!(!dump.contains("TestAgent") && !dump.contains("/private/page"));

    let (other, _) = owner(&app, "mallory@example.com").await;
    assert_problem(
        app.get(&format!("/api/v1/charts/{id}/analytics"), Some(&other))
            .await,
        404,
        "not-found",
    )
    .await;
    for bad in [
        "?from=2026-13-01",
        "?from=2026-02-01&to=2026-01-01",
        "?from=2024-01-01&to=2026-01-01",
    ] {
        let res = app
            .get(&format!("/api/v1/charts/{id}/analytics{bad}"), Some(&token))
            .await;
        assert_problem(res, 422, "validation").await;
    }
}

on_both!(reports_show_their_charts, report_body);
async fn report_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner(&app, "ada@example.com").await;
    create_chart(&app, &token, &analysis, bar("Bars")).await;
    app.clock.advance(chrono::Duration::seconds(1));
    create_chart(
        &app,
        &token,
        &analysis,
        json!({"name": HOSTILE, "chart_type": "line", "config": {"x": "region", "y": ["sales"]}}),
    )
    .await;
    let report = create_report(&app, &token, &Value::String(analysis.clone()), &json!({})).await;
    let code = report["short_code"].as_str().unwrap();

    let body: Value = app
        .get(&format!("/r/{code}"), None)
        .await
        .json()
        .await
        .unwrap();
    let charts = body["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 2);
    assert_eq!(charts[0]["name"], "Bars");
    assert_eq!(charts[0]["config"], json!({"x": "region", "y": ["sales"]}));
    assert_eq!(body["view_count"], 1);

    let res = app
        .request(Method::GET, &format!("/r/{code}"), None)
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let page = res.text().await.unwrap();
    assert_eq!(page.matches("<svg").count(), 2);
    assert!(
        !page.contains("<script"),
        "no scripts, even from hostile names"
    );
    assert!(
        page.find("<svg").unwrap() < page.find("Results").unwrap(),
        "charts above the data"
    );
    let json_again: Value = app
        .get(&format!("/r/{code}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json_again["view_count"], 3, "each view counted once");
}
