//! Public report access over HTTP: the rules in order (404, 410, 401, 200), view counting
//! under concurrency, unlock and its throttle, and the browser (HTML) face with its
//! headers, escaping, password form and cookie.
use std::collections::HashSet;

use chrono::{Duration, SecondsFormat};
use futures_util::future::join_all;
use iops_tests::{TestDb, on_both};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::analyses::create_analysis;
use crate::datasets::upload_csv;
use crate::reports::create_report;
use crate::support::{PASSWORD, TestApp, assert_problem, spawn};

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const REPORT_PASSWORD: &str = "open sesame";

/// A logged-in user with an analysis; returns `(token, analysis)`.
async fn owner_with_analysis(app: &TestApp, name: &str) -> (String, Value) {
    let (_, token) = app.user("owner@example.com").await;
    app.domain
        .accounts
        .set_tier_by_email(
            &domain::Admin::local_operator(),
            "owner@example.com",
            domain::Tier::Pro,
        )
        .await
        .unwrap();
    let analysis = create_analysis(app, &token, &json!({"name": name})).await;
    (token, analysis)
}

async fn browser_get(app: &TestApp, path: &str, cookie: Option<&str>) -> Response {
    let mut req = app
        .request(Method::GET, path, None)
        .header(header::ACCEPT, BROWSER_ACCEPT);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    req.send().await.expect("send")
}

async fn form_unlock(app: &TestApp, code: &str, password: &str) -> Response {
    app.request(Method::POST, &format!("/r/{code}/unlock"), None)
        .header(header::ACCEPT, BROWSER_ACCEPT)
        .form(&[("password", password)])
        .send()
        .await
        .expect("send")
}

async fn json_unlock(app: &TestApp, code: &str, password: &str) -> Response {
    app.post(
        &format!("/r/{code}/unlock"),
        None,
        &json!({"password": password}),
    )
    .await
}

/// Asserts an HTML page with the security headers; returns its text.
async fn assert_html(res: Response, status: u16) -> String {
    assert_eq!(res.status().as_u16(), status, "status");
    let headers = res.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let text = res.text().await.expect("html text");
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
    assert!(!text.contains("<script"), "{text}");
    for tag in ["<img", "<link", "<iframe", "<object"] {
        assert!(!text.contains(tag), "no external assets: {text}");
    }
    text
}

fn code_of(report: &Value) -> String {
    report["short_code"].as_str().unwrap().to_owned()
}

on_both!(
    full_flow_from_upload_to_public_view,
    full_flow_from_upload_to_public_view_body
);
async fn full_flow_from_upload_to_public_view_body(db: TestDb) {
    let app = spawn(db).await;
    let user = app.register("ada@example.com").await;
    assert_eq!(user["tier"], "free");
    let token = app.login("ada@example.com", PASSWORD).await;
    let ds = upload_csv(&app, &token, "cities.csv").await;
    let analysis = create_analysis(
        &app,
        &token,
        &json!({"name": "Population by city", "dataset_id": ds["id"], "config": {"metric": "population"}}),
    )
    .await;
    let res = app
        .patch(
            &format!("/api/v1/analyses/{}", analysis["id"].as_str().unwrap()),
            Some(&token),
            &json!({"results": {"max": "Paris"}, "status": "completed"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let analysis: Value = res.json().await.unwrap();
    let report = create_report(&app, &token, &analysis["id"], &json!({})).await;

    let res = app.get(report["url"].as_str().unwrap(), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let view: Value = res.json().await.unwrap();
    assert_eq!(
        view,
        json!({
            "short_code": report["short_code"],
            "charts": [],
            "view_count": 1,
            "expires_at": null,
            "created_at": report["created_at"],
            "analysis": {
                "name": "Population by city",
                "status": "completed",
                "config": {"metric": "population"},
                "results": {"max": "Paris"},
                "updated_at": analysis["updated_at"],
            },
            "dataset": {"name": "cities.csv", "row_count": 3, "column_count": 3},
        })
    );
    let again: Value = app
        .get(report["url"].as_str().unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["view_count"], 2);
    let owner_view: Value = app
        .get(
            &format!("/api/v1/reports/{}", report["id"].as_str().unwrap()),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(owner_view["view_count"], 2);

    // The dataset gone, the report still opens, with `dataset: null`.
    let res = app
        .delete(
            &format!("/api/v1/datasets/{}", ds["id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let view: Value = app
        .get(report["url"].as_str().unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["dataset"], Value::Null);
    assert_eq!(view["view_count"], 3);
}

on_both!(rules_in_order, rules_in_order_body);
async fn rules_in_order_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner_with_analysis(&app, "A").await;

    for path in [
        "/r/doesNotExist1",
        "/r/x",
        "/r/has-dash",
        &format!("/r/{}", "a".repeat(40)),
    ] {
        assert_problem(app.get(path, None).await, 404, "not-found").await;
    }
    let private = create_report(&app, &token, &analysis["id"], &json!({"is_public": false})).await;
    assert_problem(
        app.get(&format!("/r/{}", code_of(&private)), None).await,
        404,
        "not-found",
    )
    .await;
    // Private comes before the password.
    let private_locked = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"is_public": false, "password": REPORT_PASSWORD}),
    )
    .await;
    assert_problem(
        app.get(&format!("/r/{}", code_of(&private_locked)), None)
            .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        json_unlock(&app, &code_of(&private_locked), REPORT_PASSWORD).await,
        404,
        "not-found",
    )
    .await;

    let expires = (app.clock_now() + Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let expiring = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"expires_at": expires}),
    )
    .await;
    let locked_expiring = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"expires_at": expires, "password": REPORT_PASSWORD}),
    )
    .await;
    let res = app.get(&format!("/r/{}", code_of(&expiring)), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["expires_at"], expires);
    app.clock.advance(Duration::hours(2));
    assert_problem(
        app.get(&format!("/r/{}", code_of(&expiring)), None).await,
        410,
        "gone",
    )
    .await;
    // Expiry comes before the password.
    assert_problem(
        app.get(&format!("/r/{}", code_of(&locked_expiring)), None)
            .await,
        410,
        "gone",
    )
    .await;
    assert_problem(
        json_unlock(&app, &code_of(&locked_expiring), REPORT_PASSWORD).await,
        410,
        "gone",
    )
    .await;

    // Refused views are not counted.
    let listed: Value = app
        .get("/api/v1/reports", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    for item in listed["items"].as_array().unwrap() {
        let expected = if item["id"] == expiring["id"] { 1 } else { 0 };
        assert_eq!(item["view_count"], expected, "{item}");
    }
    // Only GET on the view.
    let res = app
        .request(Method::DELETE, &format!("/r/{}", code_of(&expiring)), None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

on_both!(password_unlock_and_tokens, password_unlock_and_tokens_body);
async fn password_unlock_and_tokens_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner_with_analysis(&app, "Secret").await;
    let locked = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"password": REPORT_PASSWORD}),
    )
    .await;
    let other = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"password": REPORT_PASSWORD}),
    )
    .await;
    let open = create_report(&app, &token, &analysis["id"], &json!({})).await;
    let code = code_of(&locked);
    let path = format!("/r/{code}");

    assert_problem(app.get(&path, None).await, 401, "password-required").await;
    // A login token is not an unlock token.
    assert_problem(app.get(&path, Some(&token)).await, 401, "password-required").await;
    assert_problem(
        app.get(&path, Some("garbage")).await,
        401,
        "password-required",
    )
    .await;

    assert_problem(
        json_unlock(&app, &code, "wrong password").await,
        401,
        "unauthorized",
    )
    .await;
    let res = json_unlock(&app, &code, REPORT_PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let unlocked: Value = res.json().await.unwrap();
    let mut keys: Vec<&str> = unlocked
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "expires_at"]);
    let access = unlocked["access_token"].as_str().unwrap().to_owned();
    assert!(unlocked["expires_at"].as_str().unwrap().ends_with('Z'));

    let res = app.get(&path, Some(&access)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let view: Value = res.json().await.unwrap();
    assert_eq!(
        (view["view_count"].clone(), view["analysis"]["name"].clone()),
        (json!(1), json!("Secret"))
    );
    // The token opens this report only.
    assert_problem(
        app.get(&format!("/r/{}", code_of(&other)), Some(&access))
            .await,
        401,
        "password-required",
    )
    .await;
    // ...and cannot act as a login.
    assert_problem(
        app.get("/api/v1/me", Some(&access)).await,
        401,
        "unauthorized",
    )
    .await;
    // A report without a password has nothing to unlock.
    assert_problem(
        json_unlock(&app, &code_of(&open), REPORT_PASSWORD).await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        json_unlock(&app, "nosuchcode1", REPORT_PASSWORD).await,
        404,
        "not-found",
    )
    .await;

    // Request rules of the unlock body.
    let unlock_path = format!("/r/{code}/unlock");
    assert_problem(
        app.post(&unlock_path, None, &json!({})).await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        app.post(
            &unlock_path,
            None,
            &json!({"password": REPORT_PASSWORD, "remember": true}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    let res = app
        .request(Method::POST, &unlock_path, None)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(REPORT_PASSWORD)
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;
    let res = app
        .request(Method::POST, &unlock_path, None)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"password\": ")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;

    // Changing the password ends earlier unlocks.
    let res = app
        .patch(
            &format!("/api/v1/reports/{}", locked["id"].as_str().unwrap()),
            Some(&token),
            &json!({"password": "another secret"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_problem(
        app.get(&path, Some(&access)).await,
        401,
        "password-required",
    )
    .await;
    // Clearing it opens the report to everyone.
    app.patch(
        &format!("/api/v1/reports/{}", locked["id"].as_str().unwrap()),
        Some(&token),
        &json!({"password": null}),
    )
    .await;
    let res = app.get(&path, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["view_count"], 2);
}

on_both!(
    wrong_passwords_are_throttled,
    wrong_passwords_are_throttled_body
);
async fn wrong_passwords_are_throttled_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner_with_analysis(&app, "A").await;
    let locked = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"password": REPORT_PASSWORD}),
    )
    .await;
    let neighbour = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"password": REPORT_PASSWORD}),
    )
    .await;
    let code = code_of(&locked);

    for _ in 0..10 {
        assert_problem(
            json_unlock(&app, &code, "not the password").await,
            401,
            "unauthorized",
        )
        .await;
    }
    let res = json_unlock(&app, &code, "not the password").await;
    let retry_after: u64 = res.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
    assert_problem(res, 429, "rate-limited").await;
    // The right password too, until the window passes.
    assert_problem(
        json_unlock(&app, &code, REPORT_PASSWORD).await,
        429,
        "rate-limited",
    )
    .await;
    // The browser form gets a page, with Retry-After.
    let res = form_unlock(&app, &code, REPORT_PASSWORD).await;
    assert!(
        res.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let page = assert_html(res, 429).await;
    assert!(page.contains("Too many attempts"), "{page}");
    // Another report is not affected.
    assert_eq!(
        json_unlock(&app, &code_of(&neighbour), REPORT_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );

    app.clock.advance(Duration::minutes(16));
    assert_eq!(
        json_unlock(&app, &code, REPORT_PASSWORD).await.status(),
        StatusCode::OK
    );
}

on_both!(
    concurrent_views_are_each_counted,
    concurrent_views_are_each_counted_body
);
async fn concurrent_views_are_each_counted_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner_with_analysis(&app, "Popular").await;
    let report = create_report(&app, &token, &analysis["id"], &json!({})).await;
    let url = report["url"].as_str().unwrap().to_owned();

    let views = (0..200).map(|_| async {
        let res = app.get(&url, None).await;
        let status = res.status();
        let body: Value = res.json().await.expect("view json");
        (status, body["view_count"].as_i64())
    });
    let results = join_all(views).await;
    let mut counts = HashSet::new();
    for (status, count) in results {
        assert_eq!(status, StatusCode::OK);
        counts.insert(count.expect("view_count"));
    }
    assert_eq!(counts.len(), 200);
    assert_eq!(counts, (1..=200).collect::<HashSet<i64>>());
    let stored: Value = app
        .get(
            &format!("/api/v1/reports/{}", report["id"].as_str().unwrap()),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["view_count"], 200);

    // Operators see how many statements counted them (views arriving together share one).
    assert_eq!(app.metric("iops_report_views_counted_total").await, 200);
    let statements = app.metric("iops_report_view_statements_total").await;
    assert!((1..=200).contains(&statements), "{statements} statements");
}

on_both!(
    abandoned_views_leave_the_pool_usable,
    abandoned_views_leave_the_pool_usable_body
);
/// Clients that hang up while their view is in flight (the server may be anywhere in the
/// statement when that happens) must not leave a connection behind in an unknown state:
/// every later view is served and counted.
async fn abandoned_views_leave_the_pool_usable_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner_with_analysis(&app, "Abandoned").await;
    let report = create_report(&app, &token, &analysis["id"], &json!({})).await;
    let url = report["url"].as_str().unwrap().to_owned();

    let quitters = (0..100u64).map(|i| {
        let request = app
            .request(Method::GET, &url, None)
            .timeout(std::time::Duration::from_micros(100 + 40 * i));
        async move {
            let _ = request.send().await;
        }
    });
    join_all(quitters).await;

    let mut last = 0;
    for _ in 0..24 {
        let res = app.get(&url, None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let count = res.json::<Value>().await.unwrap()["view_count"]
            .as_i64()
            .expect("view_count");
        assert!(count > last, "{count} after {last}");
        last = count;
    }
}

on_both!(browsers_get_pages, browsers_get_pages_body);
async fn browsers_get_pages_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner_with_analysis(&app, "<script>alert(1)</script>").await;
    app.patch(
        &format!("/api/v1/analyses/{}", analysis["id"].as_str().unwrap()),
        Some(&token),
        &json!({"results": {"note": "</pre><img src=x onerror=alert(2)> & \"quoted\""}}),
    )
    .await;
    let report = create_report(&app, &token, &analysis["id"], &json!({})).await;
    let url = report["url"].as_str().unwrap().to_owned();

    let res = browser_get(&app, &url, None).await;
    let vary = res.headers()[header::VARY].to_str().unwrap().to_owned();
    assert!(vary.contains("Accept"), "{vary}");
    let page = assert_html(res, 200).await;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(
        page.contains(
            "&lt;/pre&gt;&lt;img src=x onerror=alert(2)&gt; &amp; \\&quot;quoted\\&quot;"
        ),
        "{page}"
    );
    assert!(!page.contains("<img"), "{page}");
    assert!(page.contains(&code_of(&report)));
    // The same URL still answers JSON to an API client, and the HTML view was counted.
    let json_view: Value = app.get(&url, None).await.json().await.unwrap();
    assert_eq!(json_view["view_count"], 2);

    assert_html(browser_get(&app, "/r/doesNotExist1", None).await, 404).await;
    assert_html(browser_get(&app, "/r/bad-code!", None).await, 404).await;
    let private = create_report(&app, &token, &analysis["id"], &json!({"is_public": false})).await;
    assert_html(
        browser_get(&app, &format!("/r/{}", code_of(&private)), None).await,
        404,
    )
    .await;
    let expires =
        (app.clock_now() + Duration::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let expiring = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"expires_at": expires}),
    )
    .await;
    app.clock.advance(Duration::minutes(10));
    let page = assert_html(
        browser_get(&app, &format!("/r/{}", code_of(&expiring)), None).await,
        410,
    )
    .await;
    assert!(page.contains("expired"), "{page}");
}

on_both!(
    browser_password_form_and_cookie,
    browser_password_form_and_cookie_body
);
async fn browser_password_form_and_cookie_body(db: TestDb) {
    let app = spawn(db).await;
    let (token, analysis) = owner_with_analysis(&app, "Quarterly <numbers>").await;
    let locked = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"password": REPORT_PASSWORD}),
    )
    .await;
    let other = create_report(
        &app,
        &token,
        &analysis["id"],
        &json!({"password": REPORT_PASSWORD}),
    )
    .await;
    let code = code_of(&locked);
    let path = format!("/r/{code}");

    let page = assert_html(browser_get(&app, &path, None).await, 401).await;
    assert!(
        page.contains(&format!(
            "<form method=\"post\" action=\"/r/{code}/unlock\">"
        )),
        "{page}"
    );
    assert!(
        page.contains("type=\"password\" id=\"password\" name=\"password\""),
        "{page}"
    );
    assert!(
        !page.contains("Quarterly"),
        "the name is not shown before unlocking: {page}"
    );

    // A wrong password: the form again, with a message, and no cookie.
    let res = form_unlock(&app, &code, "wrong password").await;
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let page = assert_html(res, 401).await;
    assert!(page.contains("not right"), "{page}");
    assert!(
        page.contains(&format!("action=\"/r/{code}/unlock\"")),
        "{page}"
    );
    // An empty one: the form again.
    let page = assert_html(form_unlock(&app, &code, "").await, 422).await;
    assert!(page.contains("Enter the password"), "{page}");

    // The right one: 303 to the report, with a cookie for this report only.
    let res = form_unlock(&app, &code, REPORT_PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], path.as_str());
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let set_cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie_name = format!("iops_report_{code}");
    assert!(
        set_cookie.starts_with(&format!("{cookie_name}=")),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains(&format!("Path={path}")), "{set_cookie}");
    let max_age: i64 = set_cookie
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .unwrap();
    assert_eq!(
        max_age,
        domain::Settings::default().unlock_ttl.num_seconds()
    );
    let pair = set_cookie.split(';').next().unwrap().to_owned();

    let page = assert_html(browser_get(&app, &path, Some(&pair)).await, 200).await;
    assert!(page.contains("Quarterly &lt;numbers&gt;"), "{page}");
    // The cookie is this report's only: under another report's name it opens nothing,
    // and the other report asks for its own password.
    let value = pair.split_once('=').unwrap().1;
    let forged = format!("iops_report_{}={value}", code_of(&other));
    assert_html(
        browser_get(&app, &format!("/r/{}", code_of(&other)), Some(&forged)).await,
        401,
    )
    .await;
    // The cookie works for JSON clients too (same token).
    let res = app
        .request(Method::GET, &path, None)
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["view_count"], 2);

    // After a password change the cookie no longer opens the report, and the stale
    // cookie is cleared.
    app.patch(
        &format!("/api/v1/reports/{}", locked["id"].as_str().unwrap()),
        Some(&token),
        &json!({"password": "a new secret"}),
    )
    .await;
    let res = browser_get(&app, &path, Some(&pair)).await;
    let cleared = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cleared.starts_with(&format!("{cookie_name}=;")),
        "{cleared}"
    );
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_html(res, 401).await;

    // A form unlock of a report without a password just sends the browser there.
    let open = create_report(&app, &token, &analysis["id"], &json!({})).await;
    let res = form_unlock(&app, &code_of(&open), "anything at all").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[header::LOCATION],
        format!("/r/{}", code_of(&open)).as_str()
    );
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    // Unknown code: the not-found page.
    assert_html(form_unlock(&app, "nosuchcode1", REPORT_PASSWORD).await, 404).await;
}
