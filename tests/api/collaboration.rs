//! Sharing over HTTP: invitations and their tokens, every role against every kind of
//! operation, the exact collaborator limit across two server processes, comments, and the
//! activity feed. Each test on SQLite and on PostgreSQL.
use futures_util::future::join_all;
use iops_tests::{TestDb, on_both};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::analyses::create_analysis;
use crate::support::{TestApp, assert_problem, spawn};

/// An analysis of `token`'s with results and one bar chart: `(analysis id, chart id)`.
async fn shared_fixture(app: &TestApp, token: &str) -> (String, String) {
    let analysis = create_analysis(app, token, &json!({"name": "Quarterly"})).await;
    let id = analysis["id"].as_str().unwrap().to_owned();
    let res = app
        .patch(
            &format!("/api/v1/analyses/{id}"),
            Some(token),
            &json!({"results": {
                "columns": [{"name": "region", "type": "string"}, {"name": "sales", "type": "float"}],
                "rows": [["north", 10.5], ["south", 7.25]]
            }}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let chart = app
        .post(
            &format!("/api/v1/analyses/{id}/charts"),
            Some(token),
            &json!({"name": "Sales", "chart_type": "bar", "config": {"x": "region", "y": ["sales"]}}),
        )
        .await;
    assert_eq!(chart.status(), StatusCode::CREATED);
    let chart: Value = chart.json().await.unwrap();
    (id, chart["id"].as_str().unwrap().to_owned())
}

/// Invites `email` to `analysis` as `role`; asserts `201` and returns the answer.
async fn invite(app: &TestApp, token: &str, analysis: &str, email: &str, role: &str) -> Value {
    let res = app
        .post(
            &format!("/api/v1/analyses/{analysis}/collaborators"),
            Some(token),
            &json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "invite {email}");
    res.json().await.unwrap()
}

fn token_of(invitation: &Value) -> String {
    invitation["invite_url"]
        .as_str()
        .unwrap()
        .strip_prefix("/invitations/")
        .expect("invite_url is /invitations/{token}")
        .to_owned()
}

async fn accept(app: &TestApp, token: &str, invitation: &Value) -> Value {
    let res = app
        .post(
            &format!("/api/v1/invitations/{}/accept", token_of(invitation)),
            Some(token),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK, "accept");
    res.json().await.unwrap()
}

/// Invites and accepts: a logged-in collaborator's token.
async fn collaborator(
    app: &TestApp,
    owner: &str,
    analysis: &str,
    email: &str,
    role: &str,
) -> String {
    let invitation = invite(app, owner, analysis, email, role).await;
    let (_, token) = app.user(email).await;
    accept(app, &token, &invitation).await;
    token
}

async fn status(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> u16 {
    let mut req = app.request(method, path, Some(token));
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap().status().as_u16()
}

on_both!(roles_decide_every_operation, roles_body);
async fn roles_body(db: TestDb) {
    use reqwest::Method as M;
    let app = spawn(db).await;
    let (ada, owner) = app.user("ada@example.com").await;
    let (analysis, chart) = shared_fixture(&app, &owner).await;

    let invitation = invite(&app, &owner, &analysis, "Bob@Example.com", "viewer").await;
    assert_eq!(invitation["email"], "bob@example.com");
    assert_eq!(invitation["role"], "viewer");
    assert_eq!(invitation["status"], "pending");
    assert_eq!(invitation["analysis_id"], analysis);
    assert!(invitation["expires_at"].is_string());
    assert_eq!(token_of(&invitation).len(), 43, "256-bit base64url token");
    let (_, viewer) = app.user("bob@example.com").await;
    let accepted = accept(&app, &viewer, &invitation).await;
    assert_eq!(accepted["status"], "accepted");
    assert!(
        accepted.get("invite_url").is_none(),
        "the token is shown once"
    );
    let editor = collaborator(&app, &owner, &analysis, "carol@example.com", "editor").await;
    let (_, outsider) = app.user("dave@example.com").await;

    let a = format!("/api/v1/analyses/{analysis}");
    let c = format!("/api/v1/charts/{chart}");
    let dataset = crate::datasets::upload_csv(&app, &owner, "cities.csv").await;
    let d = format!("/api/v1/datasets/{}", dataset["id"].as_str().unwrap());
    let res = app
        .patch(&a, Some(&owner), &json!({"dataset_id": dataset["id"]}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let report = app
        .post(&format!("{a}/reports"), Some(&owner), &json!({}))
        .await;
    assert_eq!(report.status(), StatusCode::CREATED);
    let report = report.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rename = json!({"name": "Renamed"});
    let new_chart = json!({"name": "More", "chart_type": "table", "config": {}});
    // (method, path, body, viewer, editor, outsider)
    let table: Vec<(M, String, Option<Value>, u16, u16, u16)> = vec![
        (M::GET, a.clone(), None, 200, 200, 404),
        (M::PATCH, a.clone(), Some(rename.clone()), 403, 200, 404),
        (
            M::PATCH,
            a.clone(),
            Some(json!({"dataset_id": null})),
            403,
            403,
            404,
        ),
        (
            M::PATCH,
            a.clone(),
            Some(json!({"dataset_id": dataset["id"]})),
            403,
            403,
            404,
        ),
        (M::GET, d.clone(), None, 200, 200, 404),
        (
            M::PATCH,
            d.clone(),
            Some(json!({"name": "mine now"})),
            403,
            403,
            404,
        ),
        (M::DELETE, d.clone(), None, 403, 403, 404),
        (M::GET, format!("{a}/charts"), None, 200, 200, 404),
        (
            M::POST,
            format!("{a}/charts"),
            Some(new_chart.clone()),
            403,
            201,
            404,
        ),
        (M::GET, c.clone(), None, 200, 200, 404),
        (M::GET, format!("{c}/image.svg"), None, 200, 200, 404),
        (
            M::PATCH,
            c.clone(),
            Some(json!({"name": "Sales!"})),
            403,
            200,
            404,
        ),
        (
            M::POST,
            format!("{c}/embed"),
            Some(json!({"mode": "public"})),
            403,
            403,
            404,
        ),
        (M::POST, format!("{c}/embed/rotate"), None, 403, 403, 404),
        (M::DELETE, format!("{c}/embed"), None, 403, 403, 404),
        (M::GET, format!("{c}/analytics"), None, 403, 403, 404),
        (M::GET, format!("{a}/collaborators"), None, 403, 403, 404),
        (
            M::POST,
            format!("{a}/collaborators"),
            Some(json!({"email": "eve@example.com", "role": "viewer"})),
            403,
            403,
            404,
        ),
        (
            M::POST,
            format!("{a}/reports"),
            Some(json!({})),
            403,
            403,
            404,
        ),
        (
            M::GET,
            format!("/api/v1/reports/{report}"),
            None,
            403,
            403,
            404,
        ),
        (
            M::PATCH,
            format!("/api/v1/reports/{report}"),
            Some(json!({"is_public": false})),
            403,
            403,
            404,
        ),
        (
            M::DELETE,
            format!("/api/v1/reports/{report}"),
            None,
            403,
            403,
            404,
        ),
        (M::GET, format!("{c}/comments"), None, 200, 200, 404),
        (
            M::POST,
            format!("{c}/comments"),
            Some(json!({"body": "hi"})),
            201,
            201,
            404,
        ),
        (M::DELETE, a.clone(), None, 403, 403, 404),
    ];
    for (method, path, body, want_viewer, want_editor, want_outsider) in table {
        for (who, token, want) in [
            ("viewer", &viewer, want_viewer),
            ("editor", &editor, want_editor),
            ("outsider", &outsider, want_outsider),
        ] {
            let got = status(&app, method.clone(), &path, token, body.clone()).await;
            assert_eq!(got, want, "{who} {method} {path}");
        }
    }
    // A forbidden answer is a problem document saying why.
    let problem = assert_problem(app.delete(&a, Some(&viewer)).await, 403, "forbidden").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("role"),
        "{problem}"
    );
    // The owner still does everything; the shared analysis is not in the others' lists.
    assert_eq!(
        status(
            &app,
            M::POST,
            &format!("{c}/embed"),
            &owner,
            Some(json!({"mode": "public"}))
        )
        .await,
        200
    );
    let listed: Value = app
        .get("/api/v1/analyses", Some(&viewer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);

    // /shared: the analysis, the caller's role, the owner.
    let shared: Value = app
        .get("/api/v1/shared", Some(&viewer))
        .await
        .json()
        .await
        .unwrap();
    let items = shared["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{shared}");
    assert_eq!(items[0]["analysis"]["id"], analysis);
    assert_eq!(items[0]["role"], "viewer");
    assert_eq!(items[0]["owner"]["id"], ada["id"]);
    assert!(items[0]["owner"].get("full_name").is_some());
    let none: Value = app
        .get("/api/v1/shared", Some(&outsider))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["items"], json!([]));

    // A role change and a revocation apply to the next request, on another process too.
    let second = iops_tests::domain(
        app.db.connect().await,
        app.clock.clone(),
        std::sync::Arc::new(app.store.clone()),
        app.domain.settings().clone(),
    );
    let (addr2, handle2) = iops_tests::serve(second, &api::http::ServerOptions::default());
    let other = |path: &str| format!("http://{addr2}{path}");
    let patch_on_other = |token: String| {
        let client = app.client.clone();
        let url = other(&a);
        async move {
            client
                .patch(url)
                .bearer_auth(token)
                .json(&json!({"name": "From the other process"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(patch_on_other(viewer.clone()).await, StatusCode::FORBIDDEN);
    let list: Value = app
        .get(&format!("{a}/collaborators"), Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let bob = items
        .iter()
        .find(|i| i["email"] == "bob@example.com")
        .unwrap();
    let carol = items
        .iter()
        .find(|i| i["email"] == "carol@example.com")
        .unwrap();
    let res = app
        .patch(
            &format!("/api/v1/collaborations/{}", bob["id"].as_str().unwrap()),
            Some(&owner),
            &json!({"role": "editor"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "editor");
    assert_eq!(patch_on_other(viewer.clone()).await, StatusCode::OK);

    let carol_id = carol["id"].as_str().unwrap();
    // The owner's dataset is the owner's alone to change.
    assert_eq!(app.get(&d, Some(&owner)).await.status(), StatusCode::OK);
    assert_eq!(
        app.delete(&format!("/api/v1/collaborations/{carol_id}"), Some(&owner))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(patch_on_other(editor.clone()).await, StatusCode::NOT_FOUND);
    let gone = app
        .client
        .get(other(&a))
        .bearer_auth(&editor)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    handle2.stop(true).await;
    // Revoked twice, or by a collaborator: not theirs to touch.
    assert_problem(
        app.delete(&format!("/api/v1/collaborations/{carol_id}"), Some(&owner))
            .await,
        404,
        "not-found",
    )
    .await;
    let bob_id = bob["id"].as_str().unwrap();
    assert_problem(
        app.patch(
            &format!("/api/v1/collaborations/{bob_id}"),
            Some(&viewer),
            &json!({"role": "viewer"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.patch(
            &format!("/api/v1/collaborations/{bob_id}"),
            Some(&outsider),
            &json!({"role": "viewer"}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.patch(
            &format!("/api/v1/collaborations/{bob_id}"),
            Some(&owner),
            &json!({"role": "owner"}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    // Deleting the analysis takes its invitations with it.
    assert_eq!(
        app.delete(&a, Some(&owner)).await.status(),
        StatusCode::NO_CONTENT
    );
    let shared: Value = app
        .get("/api/v1/shared", Some(&viewer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shared["items"], json!([]));
}

on_both!(invitation_tokens_are_checked, tokens_body);
async fn tokens_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, owner) = app.user("ada@example.com").await;
    let (analysis, _) = shared_fixture(&app, &owner).await;
    let (_, bob) = app.user("bob@example.com").await;
    let (_, mallory) = app.user("mallory@example.com").await;
    let path = |invitation: &Value, verb: &str| {
        format!("/api/v1/invitations/{}/{verb}", token_of(invitation))
    };

    let invitation = invite(&app, &owner, &analysis, "bob@example.com", "viewer").await;
    // The link opens a page saying what is offered, to whom, and how to answer.
    let page = app
        .get(invitation["invite_url"].as_str().unwrap(), None)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Quarterly") && html.contains("bob@example.com") && html.contains("viewer"),
        "{html}"
    );
    assert!(html.contains(&format!(
        "/api/v1/invitations/{}/accept",
        token_of(&invitation)
    )));
    // Another account cannot take it; nobody without a login can.
    assert_problem(
        app.post(&path(&invitation, "accept"), Some(&mallory), &json!({}))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post(&path(&invitation, "accept"), None, &json!({}))
            .await,
        401,
        "unauthorized",
    )
    .await;
    // A second invitation of the same email to the same analysis while one is live.
    assert_problem(
        app.post(
            &format!("/api/v1/analyses/{analysis}/collaborators"),
            Some(&owner),
            &json!({"email": "BOB@example.com", "role": "editor"}),
        )
        .await,
        409,
        "conflict",
    )
    .await;
    accept(&app, &bob, &invitation).await;
    // Used: a second answer finds nothing.
    assert_problem(
        app.post(&path(&invitation, "accept"), Some(&bob), &json!({}))
            .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post(&path(&invitation, "decline"), Some(&bob), &json!({}))
            .await,
        404,
        "not-found",
    )
    .await;
    // Accepted is still live: no second invitation either.
    assert_problem(
        app.post(
            &format!("/api/v1/analyses/{analysis}/collaborators"),
            Some(&owner),
            &json!({"email": "bob@example.com", "role": "viewer"}),
        )
        .await,
        409,
        "conflict",
    )
    .await;

    // Declined: 204, and the token is used up.
    let declined = invite(&app, &owner, &analysis, "carol@example.com", "viewer").await;
    let (_, carol) = app.user("carol@example.com").await;
    assert_eq!(
        app.post(&path(&declined, "decline"), Some(&carol), &json!({}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(
        app.post(&path(&declined, "accept"), Some(&carol), &json!({}))
            .await,
        404,
        "not-found",
    )
    .await;
    // Declined frees the email: it can be invited again.
    let again = invite(&app, &owner, &analysis, "carol@example.com", "editor").await;

    // Revoked: the token stops working.
    let revoked = app
        .delete(
            &format!("/api/v1/collaborations/{}", again["id"].as_str().unwrap()),
            Some(&owner),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.post(&path(&again, "accept"), Some(&carol), &json!({}))
            .await,
        404,
        "not-found",
    )
    .await;

    // Expired after seven days: 410, and the email can then be invited afresh.
    let late = invite(&app, &owner, &analysis, "dan@example.com", "viewer").await;
    app.user("dan@example.com").await;
    app.clock
        .advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
    // Logins last seven days too: everyone logs in again.
    let owner = app.login("ada@example.com", crate::support::PASSWORD).await;
    let bob = app.login("bob@example.com", crate::support::PASSWORD).await;
    let dan = app.login("dan@example.com", crate::support::PASSWORD).await;
    assert_problem(
        app.post(&path(&late, "accept"), Some(&dan), &json!({}))
            .await,
        410,
        "gone",
    )
    .await;
    let page = app.get(late["invite_url"].as_str().unwrap(), None).await;
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("This invitation has expired")
    );
    let used = app
        .get(invitation["invite_url"].as_str().unwrap(), None)
        .await;
    assert_eq!(used.status(), StatusCode::NOT_FOUND);
    assert!(used.text().await.unwrap().contains("Nothing here"));
    let list: Value = app
        .get(
            &format!("/api/v1/analyses/{analysis}/collaborators"),
            Some(&owner),
        )
        .await
        .json()
        .await
        .unwrap();
    let dan_row = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == "dan@example.com")
        .unwrap()
        .clone();
    assert_eq!(dan_row["status"], "expired");
    let dan_id = dan_row["id"].as_str().unwrap();
    assert_problem(
        app.patch(
            &format!("/api/v1/collaborations/{dan_id}"),
            Some(&owner),
            &json!({"role": "editor"}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    let fresh = invite(&app, &owner, &analysis, "dan@example.com", "viewer").await;
    // The old link stays expired (410), not unknown, after the new invitation.
    assert_problem(
        app.post(&path(&late, "accept"), Some(&dan), &json!({}))
            .await,
        410,
        "gone",
    )
    .await;
    accept(&app, &dan, &fresh).await;
    // An account that changed to another invited address cannot collaborate twice.
    let second = invite(&app, &owner, &analysis, "dan.other@example.com", "editor").await;
    let res = app
        .patch(
            "/api/v1/me",
            Some(&dan),
            &json!({"email": "dan.other@example.com"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_problem(
        app.post(&path(&second, "accept"), Some(&dan), &json!({}))
            .await,
        409,
        "conflict",
    )
    .await;

    // Garbage and bad input.
    assert_problem(
        app.post(
            "/api/v1/invitations/not-a-token/accept",
            Some(&bob),
            &json!({}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    for body in [
        json!({"email": "ada@example.com", "role": "viewer"}),
        json!({"email": "not an email", "role": "viewer"}),
        json!({"email": "x@example.com", "role": "owner"}),
        json!({"email": "x@example.com", "role": "viewer", "admin": true}),
        json!({"email": "x@example.com"}),
    ] {
        assert_problem(
            app.post(
                &format!("/api/v1/analyses/{analysis}/collaborators"),
                Some(&owner),
                &body,
            )
            .await,
            422,
            "validation",
        )
        .await;
    }
    assert_problem(
        app.post(
            "/api/v1/analyses/00000000-0000-0000-0000-000000000000/collaborators",
            Some(&owner),
            &json!({"email": "x@example.com", "role": "viewer"}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    // The token is nowhere in the database, only its hash.
    let dump = iops_tests::dump_text(&app.db.connect().await).await;
    for inv in [&invitation, &declined, &again, &late, &fresh] {
        assert!(!dump.contains(&token_of(inv)), "a token is stored in clear");
    }
}

on_both!(collaborator_limit_is_exact_across_processes, limit_body);
async fn limit_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, owner) = app.user("ada@example.com").await;
    let (first, _) = shared_fixture(&app, &owner).await;
    let (second_analysis, _) = shared_fixture(&app, &owner).await;
    let second = iops_tests::domain(
        app.db.connect().await,
        app.clock.clone(),
        std::sync::Arc::new(app.store.clone()),
        app.domain.settings().clone(),
    );
    let (addr2, handle2) = iops_tests::serve(second, &api::http::ServerOptions::default());

    let requests = (0..50).map(|i| {
        let base = if i % 2 == 0 {
            app.base.clone()
        } else {
            format!("http://{addr2}")
        };
        app.client
            .post(format!("{base}/api/v1/analyses/{first}/collaborators"))
            .bearer_auth(&owner)
            .json(&json!({"email": format!("person{i}@example.com"), "role": "viewer"}))
            .send()
    });
    let mut created = 0;
    for res in join_all(requests).await {
        let res = res.unwrap();
        match res.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::PAYMENT_REQUIRED => {
                let body = assert_problem(res, 402, "limit-exceeded").await;
                assert_eq!(body["limit"], "collaborators");
                assert_eq!(body["allowed"], 3);
                assert_eq!(body["used"], 3);
                assert_eq!(body["resets_at"], Value::Null);
            }
            other => panic!("unexpected {other}"),
        }
    }
    handle2.stop(true).await;
    assert_eq!(created, 3, "exactly the free tier's 3 collaborators");
    let usage: Value = app
        .get("/api/v1/me/usage", Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["collaborators"], json!({"used": 3, "limit": 3}));

    // Someone already counted may be invited to another analysis: still 3 people.
    let list: Value = app
        .get(
            &format!("/api/v1/analyses/{first}/collaborators"),
            Some(&owner),
        )
        .await
        .json()
        .await
        .unwrap();
    let counted: Vec<Value> = list["items"].as_array().unwrap().clone();
    let email = counted[0]["email"].as_str().unwrap();
    invite(&app, &owner, &second_analysis, email, "editor").await;
    assert_problem(
        app.post(
            &format!("/api/v1/analyses/{second_analysis}/collaborators"),
            Some(&owner),
            &json!({"email": "newcomer@example.com", "role": "viewer"}),
        )
        .await,
        402,
        "limit-exceeded",
    )
    .await;
    // Revoking one person everywhere frees a place.
    for item in &counted {
        if item["email"] == email {
            app.delete(
                &format!("/api/v1/collaborations/{}", item["id"].as_str().unwrap()),
                Some(&owner),
            )
            .await;
        }
    }
    let listed: Value = app
        .get(
            &format!("/api/v1/analyses/{second_analysis}/collaborators"),
            Some(&owner),
        )
        .await
        .json()
        .await
        .unwrap();
    let on_second = listed["items"][0]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/collaborations/{on_second}"), Some(&owner))
        .await;
    invite(
        &app,
        &owner,
        &second_analysis,
        "newcomer@example.com",
        "viewer",
    )
    .await;

    // Team is unlimited; a downgrade keeps who is there and refuses new people.
    app.domain
        .accounts
        .set_tier_by_email(
            &domain::Admin::local_operator(),
            "ada@example.com",
            domain::Tier::Team,
        )
        .await
        .unwrap();
    invite(&app, &owner, &first, "fourth@example.com", "viewer").await;
    invite(&app, &owner, &first, "fifth@example.com", "viewer").await;
    let usage: Value = app
        .get("/api/v1/me/usage", Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["collaborators"], json!({"used": 5, "limit": null}));
    app.domain
        .accounts
        .set_tier_by_email(
            &domain::Admin::local_operator(),
            "ada@example.com",
            domain::Tier::Free,
        )
        .await
        .unwrap();
    assert_problem(
        app.post(
            &format!("/api/v1/analyses/{first}/collaborators"),
            Some(&owner),
            &json!({"email": "sixth@example.com", "role": "viewer"}),
        )
        .await,
        402,
        "limit-exceeded",
    )
    .await;
    let list: Value = app
        .get(
            &format!("/api/v1/analyses/{first}/collaborators"),
            Some(&owner),
        )
        .await
        .json()
        .await
        .unwrap();
    let live = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "pending")
        .count();
    assert_eq!(live, 4, "the downgrade kept every pending invitation");
}

on_both!(comments_on_charts, comments_body);
async fn comments_body(db: TestDb) {
    let app = spawn(db).await;
    let (_, owner) = app.user("ada@example.com").await;
    let (analysis, chart) = shared_fixture(&app, &owner).await;
    let viewer = collaborator(&app, &owner, &analysis, "bob@example.com", "viewer").await;
    let editor = collaborator(&app, &owner, &analysis, "carol@example.com", "editor").await;
    let (_, outsider) = app.user("dave@example.com").await;
    let comments = format!("/api/v1/charts/{chart}/comments");

    let post = |token: String, body: Value| {
        let app = &app;
        let comments = comments.clone();
        async move { app.post(&comments, Some(&token), &body).await }
    };
    let hostile = "<script>alert(1)</script> & \"quotes\"";
    let res = post(viewer.clone(), json!({"body": hostile})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let top: Value = res.json().await.unwrap();
    assert_eq!(top["body"], hostile, "stored and returned as written");
    assert_eq!(top["parent_id"], Value::Null);
    assert_eq!(top["resolved"], false);
    assert_eq!(top["deleted"], false);
    assert_eq!(top["edited_at"], Value::Null);
    assert!(top["author"]["id"].is_string());
    let top_id = top["id"].as_str().unwrap().to_owned();
    let reply: Value = post(
        owner.clone(),
        json!({"body": "a reply", "parent_id": top_id}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(reply["parent_id"], top_id.as_str());
    // One level of replies; a parent on another chart or unknown is refused.
    let reply_id = reply["id"].as_str().unwrap().to_owned();
    assert_problem(
        post(
            owner.clone(),
            json!({"body": "deeper", "parent_id": reply_id}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        post(
            owner.clone(),
            json!({"body": "x", "parent_id": "00000000-0000-0000-0000-000000000000"}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    for body in [
        json!({"body": ""}),
        json!({"body": "   "}),
        json!({"body": "x".repeat(10_001)}),
        json!({"text": "x"}),
    ] {
        assert_problem(post(owner.clone(), body).await, 422, "validation").await;
    }
    assert_eq!(
        post(owner.clone(), json!({"body": "y".repeat(10_000)}))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_problem(
        post(outsider.clone(), json!({"body": "hi"})).await,
        404,
        "not-found",
    )
    .await;

    // Oldest first, paginated.
    let page: Value = app
        .get(&format!("{comments}?limit=2"), Some(&editor))
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], top_id.as_str());
    assert_eq!(items[1]["id"], reply_id.as_str());
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(
            &format!("{comments}?limit=2&cursor={cursor}"),
            Some(&editor),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    assert_problem(app.get(&comments, Some(&outsider)).await, 404, "not-found").await;

    // Edit: the author only.
    let one = format!("/api/v1/comments/{top_id}");
    assert_problem(
        app.patch(&one, Some(&owner), &json!({"body": "owner edit"}))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.patch(&one, Some(&outsider), &json!({"body": "x"}))
            .await,
        404,
        "not-found",
    )
    .await;
    let edited: Value = app
        .patch(&one, Some(&viewer), &json!({"body": "better"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(edited["body"], "better");
    assert!(edited["edited_at"].is_string());

    // Resolve: the owner, an editor or the author; not another viewer.
    let by_owner: Value = post(owner.clone(), json!({"body": "owner's note"}))
        .await
        .json()
        .await
        .unwrap();
    let owners_note = format!("/api/v1/comments/{}", by_owner["id"].as_str().unwrap());
    assert_problem(
        app.post(&format!("{owners_note}/resolve"), Some(&viewer), &json!({}))
            .await,
        403,
        "forbidden",
    )
    .await;
    let resolved: Value = app
        .post(&format!("{owners_note}/resolve"), Some(&editor), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resolved["resolved"], true);
    assert!(resolved["resolved_at"].is_string());
    assert_eq!(
        app.post(&format!("{one}/resolve"), Some(&viewer), &json!({}))
            .await
            .status(),
        StatusCode::OK
    );

    // Delete: the author or the analysis owner; the row stays, its body cleared.
    assert_problem(
        app.delete(&owners_note, Some(&editor)).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.delete(&one, Some(&owner)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(app.delete(&one, Some(&owner)).await, 404, "not-found").await;
    assert_problem(
        app.patch(&one, Some(&viewer), &json!({"body": "again"}))
            .await,
        404,
        "not-found",
    )
    .await;
    let all: Value = app
        .get(&comments, Some(&viewer))
        .await
        .json()
        .await
        .unwrap();
    let deleted = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == top_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["body"], "");
    let still = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == reply_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(still["body"], "a reply", "replies keep their place");
}

on_both!(activity_feed_records_who_did_what, activity_body);
async fn activity_body(db: TestDb) {
    let app = spawn(db).await;
    let (ada, owner) = app.user("ada@example.com").await;
    let (analysis, chart) = shared_fixture(&app, &owner).await;
    let (_, private) = {
        let a = create_analysis(&app, &owner, &json!({"name": "Private"})).await;
        (a.clone(), a["id"].as_str().unwrap().to_owned())
    };
    let editor = collaborator(&app, &owner, &analysis, "carol@example.com", "editor").await;
    let (_, outsider) = app.user("dave@example.com").await;
    let res = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/analyses/{analysis}"),
            Some(&editor),
        )
        .header("x-request-id", "trace-collab-1")
        .json(&json!({"name": "Edited by Carol", "config": {"secret_looking": "value"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let comment: Value = app
        .post(
            &format!("/api/v1/charts/{chart}/comments"),
            Some(&editor),
            &json!({"body": "look"}),
        )
        .await
        .json()
        .await
        .unwrap();

    let feed = |token: String, query: &str| {
        let app = &app;
        let path = format!("/api/v1/activity{query}");
        async move {
            let res = app.get(&path, Some(&token)).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            res.json::<Value>().await.unwrap()["items"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let mine = feed(owner.clone(), "").await;
    let verbs: Vec<&str> = mine.iter().map(|i| i["verb"].as_str().unwrap()).collect();
    for verb in [
        "analysis.created",
        "analysis.updated",
        "chart.created",
        "collaboration.created",
        "collaboration.accepted",
        "comment.created",
    ] {
        assert!(verbs.contains(&verb), "{verb} missing from {verbs:?}");
    }
    // Newest first; the editor's change is in the owner's feed with its request id.
    assert_eq!(mine[0]["verb"], "comment.created");
    let edit = mine
        .iter()
        .find(|i| i["request_id"] == "trace-collab-1")
        .expect("the editor's change");
    assert_eq!(edit["verb"], "analysis.updated");
    assert_eq!(edit["object_type"], "analysis");
    assert_eq!(edit["object_id"], analysis.as_str());
    assert_eq!(edit["actor"]["type"], "user");
    assert_ne!(edit["actor"]["id"], ada["id"]);
    assert_eq!(edit["metadata"]["fields"], json!(["name", "config"]));
    assert!(
        !edit.to_string().contains("value"),
        "values are not logged: {edit}"
    );

    // The collaborator sees the shared analysis's history, not the owner's other work.
    let theirs = feed(editor.clone(), "").await;
    assert!(theirs.iter().any(|i| i["verb"] == "chart.created"));
    assert!(
        theirs.iter().all(|i| i["object_id"] != private.as_str()),
        "{theirs:?}"
    );
    assert!(feed(outsider.clone(), "").await.is_empty());
    // Her own work and the shared analysis's history interleave, newest first, and pages
    // walk the merged feed without losing or repeating a row.
    create_analysis(&app, &editor, &json!({"name": "Carol's own"})).await;
    let everything = feed(editor.clone(), "?limit=100").await;
    assert!(
        everything
            .iter()
            .any(|i| i["verb"] == "analysis.created" && i["object_id"] != analysis.as_str())
    );
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/api/v1/activity?limit=2&cursor={c}"),
            None => "/api/v1/activity?limit=2".to_owned(),
        };
        let page: Value = app.get(&query, Some(&editor)).await.json().await.unwrap();
        paged.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let ids = |items: &[Value]| items.iter().map(|i| i["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&everything));

    // Filters.
    let about_comment = feed(
        owner.clone(),
        &format!(
            "?object_type=comment&object_id={}",
            comment["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(about_comment.len(), 1);
    assert_eq!(about_comment[0]["verb"], "comment.created");
    let charts_only = feed(owner.clone(), "?object_type=chart").await;
    assert!(!charts_only.is_empty());
    assert!(charts_only.iter().all(|i| i["object_type"] == "chart"));
    // An empty object_type means any; an object_id must be a UUID.
    assert_eq!(feed(owner.clone(), "?object_type=").await.len(), mine.len());
    assert_problem(
        app.get("/api/v1/activity?object_id=", Some(&owner)).await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        app.get("/api/v1/activity?object_id=nope", Some(&owner))
            .await,
        422,
        "validation",
    )
    .await;
    assert_problem(app.get("/api/v1/activity", None).await, 401, "unauthorized").await;
    // Append-only: no method changes the log.
    for method in [
        reqwest::Method::POST,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let res = app
            .request(method, "/api/v1/activity", Some(&owner))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
