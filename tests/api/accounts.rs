//! Accounts over HTTP: registration, login, sessions, profile, password, usage.
use iops_tests::{TestDb, count, on_both};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{PASSWORD, assert_problem, spawn};

on_both!(
    register_creates_a_free_user_without_its_hash,
    register_creates_a_free_user_without_its_hash_body
);
async fn register_creates_a_free_user_without_its_hash_body(db: TestDb) {
    let app = spawn(db).await;
    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "  Ada@Example.com ", "password": PASSWORD, "full_name": "Ada"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: Value = res.json().await.unwrap();
    let keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "email",
            "full_name",
            "id",
            "is_admin",
            "tier",
            "updated_at"
        ]
    );
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["full_name"], "Ada");
    assert_eq!(user["tier"], "free");
    assert_eq!(user["is_admin"], false);
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    let created = user["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{created}");
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok());
    assert!(!user.to_string().contains("argon2"));
}

on_both!(register_refusals, register_refusals_body);
async fn register_refusals_body(db: TestDb) {
    let app = spawn(db).await;
    app.register("ada@example.com").await;

    let dup = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "ADA@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(dup, 409, "conflict").await;

    let bad_email = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "not-an-email", "password": PASSWORD}),
        )
        .await;
    assert_problem(bad_email, 422, "validation").await;

    let short = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "bob@example.com", "password": "short"}),
        )
        .await;
    assert_problem(short, 422, "validation").await;

    // Server-owned fields cannot be smuggled in, and nothing is created.
    let sneaky = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "eve@example.com", "password": PASSWORD, "is_admin": true}),
        )
        .await;
    let body = assert_problem(sneaky, 422, "validation").await;
    assert!(
        body["detail"].as_str().unwrap().contains("is_admin"),
        "{body}"
    );

    let missing = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "eve@example.com"}),
        )
        .await;
    assert_problem(missing, 422, "validation").await;

    let mistyped = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "eve@example.com", "password": 12345678}),
        )
        .await;
    assert_problem(mistyped, 422, "validation").await;

    let malformed = app
        .request(Method::POST, "/api/v1/auth/register", None)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400, "bad-request").await;

    let wrong_type = app
        .request(Method::POST, "/api/v1/auth/register", None)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(json!({"email": "eve@example.com", "password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_problem(wrong_type, 400, "bad-request").await;

    let no_type = app
        .request(Method::POST, "/api/v1/auth/register", None)
        .body(json!({"email": "eve@example.com", "password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_problem(no_type, 400, "bad-request").await;

    assert_eq!(count(app.domain.database().connection(), "users").await, 1);
}

on_both!(oversized_json_is_413, oversized_json_is_413_body);
async fn oversized_json_is_413_body(db: TestDb) {
    let app = spawn(db).await;
    let huge = "x".repeat(1024 * 1024 + 1);
    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"email": "ada@example.com", "password": PASSWORD, "full_name": huge}),
        )
        .await;
    assert_problem(res, 413, "payload-too-large").await;
    assert_eq!(count(app.domain.database().connection(), "users").await, 0);
}

on_both!(
    login_answers_a_bearer_token,
    login_answers_a_bearer_token_body
);
async fn login_answers_a_bearer_token_body(db: TestDb) {
    let app = spawn(db).await;
    let user = app.register("ada@example.com").await;
    let res = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": "Ada@Example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert!(body["access_token"].as_str().unwrap().len() >= 32);
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires.to_utc() > app.clock_now());
    assert_eq!(body["user"], user);

    let me = app.get("/api/v1/me", body["access_token"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap(), user);
}

on_both!(
    wrong_password_and_unknown_email_look_the_same,
    wrong_password_and_unknown_email_look_the_same_body
);
async fn wrong_password_and_unknown_email_look_the_same_body(db: TestDb) {
    let app = spawn(db).await;
    app.register("ada@example.com").await;
    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": "ada@example.com", "password": "wrong password"}),
        )
        .await;
    let wrong = assert_problem(wrong, 401, "unauthorized").await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": "nobody@example.com", "password": "wrong password"}),
        )
        .await;
    let unknown = assert_problem(unknown, 401, "unauthorized").await;
    assert_eq!(wrong, unknown);
}

on_both!(
    missing_or_bad_tokens_are_401,
    missing_or_bad_tokens_are_401_body
);
async fn missing_or_bad_tokens_are_401_body(db: TestDb) {
    let app = spawn(db).await;
    let missing = app.get("/api/v1/me", None).await;
    assert_eq!(
        missing.headers().get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer"
    );
    assert_problem(missing, 401, "unauthorized").await;

    let bad = app.get("/api/v1/me", Some("not-a-token")).await;
    assert_problem(bad, 401, "unauthorized").await;

    let forged = app
        .get(
            "/api/v1/me",
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        )
        .await;
    assert_problem(forged, 401, "unauthorized").await;

    let basic = app
        .request(Method::GET, "/api/v1/me", None)
        .header(header::AUTHORIZATION, "Basic YWRhOnB3")
        .send()
        .await
        .unwrap();
    assert_problem(basic, 401, "unauthorized").await;
}

on_both!(
    patch_me_tells_absent_from_null,
    patch_me_tells_absent_from_null_body
);
async fn patch_me_tells_absent_from_null_body(db: TestDb) {
    let app = spawn(db).await;
    app.register("bob@example.com").await;
    let (_, token) = app.user("ada@example.com").await;
    let token = Some(token.as_str());

    let named = app
        .patch("/api/v1/me", token, &json!({"full_name": "Ada L."}))
        .await;
    assert_eq!(named.status(), StatusCode::OK);
    assert_eq!(named.json::<Value>().await.unwrap()["full_name"], "Ada L.");

    // Absent: unchanged.
    let same = app.patch("/api/v1/me", token, &json!({})).await;
    assert_eq!(same.json::<Value>().await.unwrap()["full_name"], "Ada L.");

    // Null on a nullable field: cleared.
    let cleared = app
        .patch("/api/v1/me", token, &json!({"full_name": null}))
        .await;
    assert_eq!(cleared.status(), StatusCode::OK);
    assert_eq!(
        cleared.json::<Value>().await.unwrap()["full_name"],
        Value::Null
    );

    // Null on a non-nullable field: refused.
    let null_email = app
        .patch("/api/v1/me", token, &json!({"email": null}))
        .await;
    assert_problem(null_email, 422, "validation").await;

    let taken = app
        .patch("/api/v1/me", token, &json!({"email": "BOB@example.com"}))
        .await;
    assert_problem(taken, 409, "conflict").await;

    let sneaky = app
        .patch("/api/v1/me", token, &json!({"tier": "pro"}))
        .await;
    assert_problem(sneaky, 422, "validation").await;

    let moved = app
        .patch("/api/v1/me", token, &json!({"email": " Ada2@Example.com"}))
        .await;
    assert_eq!(moved.status(), StatusCode::OK);
    let me: Value = moved.json().await.unwrap();
    assert_eq!(me["email"], "ada2@example.com");
    assert_eq!(me["tier"], "free");
    app.login("ada2@example.com", PASSWORD).await;
}

on_both!(
    password_change_ends_other_sessions,
    password_change_ends_other_sessions_body
);
async fn password_change_ends_other_sessions_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, current) = app.user("ada@example.com").await;
    let other = app.login("ada@example.com", PASSWORD).await;

    let wrong = app
        .post(
            "/api/v1/me/password",
            Some(&current),
            &json!({"current_password": "not it at all", "new_password": "a brand new one"}),
        )
        .await;
    assert_problem(wrong, 401, "unauthorized").await;

    let short = app
        .post(
            "/api/v1/me/password",
            Some(&current),
            &json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_problem(short, 422, "validation").await;

    let changed = app
        .post(
            "/api/v1/me/password",
            Some(&current),
            &json!({"current_password": PASSWORD, "new_password": "a brand new one"}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);

    assert_eq!(
        app.get("/api/v1/me", Some(&current)).await.status(),
        StatusCode::OK
    );
    assert_problem(
        app.get("/api/v1/me", Some(&other)).await,
        401,
        "unauthorized",
    )
    .await;

    let old = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(old, 401, "unauthorized").await;
    app.login("ada@example.com", "a brand new one").await;
}

on_both!(logout_ends_the_session, logout_ends_the_session_body);
async fn logout_ends_the_session_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let other = app.login("ada@example.com", PASSWORD).await;
    let out = app
        .request(Method::POST, "/api/v1/auth/logout", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get("/api/v1/me", Some(&token)).await,
        401,
        "unauthorized",
    )
    .await;
    let again = app
        .request(Method::POST, "/api/v1/auth/logout", Some(&token))
        .send()
        .await
        .unwrap();
    assert_problem(again, 401, "unauthorized").await;
    // Only that session ended.
    assert_eq!(
        app.get("/api/v1/me", Some(&other)).await.status(),
        StatusCode::OK
    );
}

on_both!(
    delete_me_removes_the_account,
    delete_me_removes_the_account_body
);
async fn delete_me_removes_the_account_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    app.user("bob@example.com").await;
    let res = app.delete("/api/v1/me", Some(&token)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get("/api/v1/me", Some(&token)).await,
        401,
        "unauthorized",
    )
    .await;
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(login, 401, "unauthorized").await;
    assert_eq!(count(app.domain.database().connection(), "users").await, 1);
    // The address is free again.
    app.register("ada@example.com").await;
}

on_both!(usage_reports_the_month, usage_reports_the_month_body);
async fn usage_reports_the_month_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let res = app.get("/api/v1/me/usage", Some(&token)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let usage: Value = res.json().await.unwrap();
    let now = app.clock_now();
    assert_eq!(usage["month"], now.format("%Y-%m").to_string());
    assert_eq!(usage["tier"], "free");
    assert!(
        usage["resets_at"]
            .as_str()
            .unwrap()
            .ends_with("-01T00:00:00Z"),
        "{usage}"
    );
    assert_eq!(usage["datasets"], json!({"used": 0, "limit": 5}));
    assert_eq!(usage["ai_messages"], json!({"used": 0, "limit": 50}));
    assert_eq!(usage["reports"], json!({"used": 0, "limit": 3}));

    app.domain
        .accounts
        .set_tier_by_email(
            &domain::Admin::local_operator(),
            "ada@example.com",
            domain::Tier::Pro,
        )
        .await
        .unwrap();
    let pro: Value = app
        .get("/api/v1/me/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pro["tier"], "pro");
    assert_eq!(pro["datasets"], json!({"used": 0, "limit": null}));
    assert_eq!(pro["ai_messages"], json!({"used": 0, "limit": null}));
    assert_eq!(pro["reports"], json!({"used": 0, "limit": null}));
}

on_both!(
    ai_messages_stop_at_the_free_limit,
    ai_messages_stop_at_the_free_limit_body
);
async fn ai_messages_stop_at_the_free_limit_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    for i in 1..=50 {
        let res = app
            .request(Method::POST, "/api/v1/me/usage/ai-messages", Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "message {i}");
        let usage: Value = res.json().await.unwrap();
        assert_eq!(usage["ai_messages"]["used"], i);
    }
    let res = app
        .request(Method::POST, "/api/v1/me/usage/ai-messages", Some(&token))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 402, "limit-exceeded").await;
    assert_eq!(problem["limit"], "ai_messages");
    assert_eq!(problem["allowed"], 50);
    assert_eq!(problem["used"], 50);
    let resets = problem["resets_at"].as_str().unwrap();
    assert!(resets.ends_with("-01T00:00:00Z"), "{resets}");

    let usage: Value = app
        .get("/api/v1/me/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["ai_messages"], json!({"used": 50, "limit": 50}));
}

on_both!(
    eleventh_failed_login_is_429,
    eleventh_failed_login_is_429_body
);
async fn eleventh_failed_login_is_429_body(db: TestDb) {
    let app = spawn(db).await;
    app.register("ada@example.com").await;
    app.register("bob@example.com").await;
    let wrong = json!({"email": "ada@example.com", "password": "wrong password"});
    for i in 1..=10 {
        let res = app.post("/api/v1/auth/login", None, &wrong).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let res = app.post("/api/v1/auth/login", None, &wrong).await;
    let retry: u64 = res
        .headers()
        .get(header::RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert_problem(res, 429, "rate-limited").await;

    // Even the right password waits for the window...
    let right = json!({"email": "ada@example.com", "password": PASSWORD});
    assert_eq!(
        app.post("/api/v1/auth/login", None, &right).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...another account is not affected...
    app.login("bob@example.com", PASSWORD).await;
    // ...and once the window has passed, the owner gets in.
    app.clock.advance(chrono::Duration::minutes(16));
    app.login("ada@example.com", PASSWORD).await;
}

on_both!(
    wrong_methods_and_paths_are_problems,
    wrong_methods_and_paths_are_problems_body
);
async fn wrong_methods_and_paths_are_problems_body(db: TestDb) {
    let app = spawn(db).await;
    assert_problem(
        app.get("/api/v1/nothing-here", None).await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/auth/login", None).await,
        405,
        "method-not-allowed",
    )
    .await;
}
