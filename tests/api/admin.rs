//! User administration over HTTP.
use iops_tests::{TestDb, on_both};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{assert_problem, spawn};

on_both!(admin_routes_need_an_admin, admin_routes_need_an_admin_body);
async fn admin_routes_need_an_admin_body(db: TestDb) {
    let app = spawn(db).await;
    let (user, token) = app.user("ada@example.com").await;
    let id = user["id"].as_str().unwrap();
    let token = Some(token.as_str());

    assert_problem(
        app.get("/api/v1/admin/users", token).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.patch(
            &format!("/api/v1/admin/users/{id}"),
            token,
            &json!({"is_admin": true}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/admin/users/{id}/usage"), token)
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get("/api/v1/admin/users", None).await,
        401,
        "unauthorized",
    )
    .await;

    // Nothing changed.
    let me: Value = app.get("/api/v1/me", token).await.json().await.unwrap();
    assert_eq!(me["is_admin"], false);
}

on_both!(admins_list_users_by_tier, admins_list_users_by_tier_body);
async fn admins_list_users_by_tier_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, admin) = app.admin("root@example.com").await;
    let admin = Some(admin.as_str());
    for i in 0..3 {
        // Distinct creation times keep the newest-first order observable.
        app.clock.advance(chrono::Duration::seconds(1));
        app.register(&format!("user{i}@example.com")).await;
    }
    app.domain
        .accounts
        .set_tier_by_email(
            &domain::Admin::local_operator(),
            "user1@example.com",
            domain::Tier::Pro,
        )
        .await
        .unwrap();

    let all: Value = app
        .get("/api/v1/admin/users", admin)
        .await
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        [
            "user2@example.com",
            "user1@example.com",
            "user0@example.com",
            "root@example.com"
        ]
    );
    assert_eq!(all["next_cursor"], Value::Null);
    assert!(!all.to_string().contains("password"));

    let pro: Value = app
        .get("/api/v1/admin/users?tier=pro", admin)
        .await
        .json()
        .await
        .unwrap();
    let items = pro["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["email"], "user1@example.com");

    // Pages follow the cursor.
    let first: Value = app
        .get("/api/v1/admin/users?limit=3", admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second: Value = app
        .get(
            &format!("/api/v1/admin/users?limit=3&cursor={cursor}"),
            admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"][0]["email"], "root@example.com");
    assert_eq!(second["next_cursor"], Value::Null);

    for bad in [
        "tier=gold",
        "limit=0",
        "limit=101",
        "limit=ten",
        "cursor=nope",
    ] {
        let res = app.get(&format!("/api/v1/admin/users?{bad}"), admin).await;
        assert_problem(res, 422, "validation").await;
    }
}

on_both!(
    tier_change_applies_to_existing_tokens,
    tier_change_applies_to_existing_tokens_body
);
async fn tier_change_applies_to_existing_tokens_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, admin) = app.admin("root@example.com").await;
    let (user, token) = app.user("ada@example.com").await;
    let id = user["id"].as_str().unwrap();

    let res = app
        .patch(
            &format!("/api/v1/admin/users/{id}"),
            Some(&admin),
            &json!({"tier": "team"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["tier"], "team");
    assert_eq!(updated["is_admin"], false);

    // The token issued before the change sees the new tier at once.
    let me: Value = app
        .get("/api/v1/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["tier"], "team");
    let usage: Value = app
        .get("/api/v1/me/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["ai_messages"]["limit"], Value::Null);

    let usage: Value = app
        .get(&format!("/api/v1/admin/users/{id}/usage"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["tier"], "team");
    assert_eq!(usage["datasets"], json!({"used": 0, "limit": null}));

    // Granting admin also applies at once.
    let res = app
        .patch(
            &format!("/api/v1/admin/users/{id}"),
            Some(&admin),
            &json!({"is_admin": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/admin/users", Some(&token)).await.status(),
        StatusCode::OK
    );
}

on_both!(admin_patch_refusals, admin_patch_refusals_body);
async fn admin_patch_refusals_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, admin) = app.admin("root@example.com").await;
    let (user, _) = app.user("ada@example.com").await;
    let id = user["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/users/{id}");
    let admin = Some(admin.as_str());

    for body in [
        json!({"tier": "gold"}),
        json!({"tier": null}),
        json!({"tier": 5}),
        json!({"is_admin": null}),
        json!({"is_admin": "yes"}),
        json!({"email": "x@example.com"}),
    ] {
        assert_problem(app.patch(&path, admin, &body).await, 422, "validation").await;
    }
    let missing = uuid::Uuid::new_v4();
    assert_problem(
        app.patch(
            &format!("/api/v1/admin/users/{missing}"),
            admin,
            &json!({"tier": "pro"}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/admin/users/{missing}/usage"), admin)
            .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.patch(
            "/api/v1/admin/users/not-a-uuid",
            admin,
            &json!({"tier": "pro"}),
        )
        .await,
        422,
        "validation",
    )
    .await;

    let unchanged: Value = app
        .get(&format!("/api/v1/admin/users/{id}/usage"), admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["tier"], "free");
}
