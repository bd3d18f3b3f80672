//! A running server over a test database, and a client for it.
use std::sync::Arc;

use chrono::Utc;
use domain::storage::LocalStore;
use domain::{Domain, FixedClock, Settings};
use iops_tests::TestDb;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

/// A password that passes the rules.
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// No cookies, no redirects followed: tests see exactly what the server sent.
    pub client: Client,
    /// The server's own domain (same database, same clock): for set-up a test cannot do
    /// over HTTP (making an admin) and for checking the database behind an answer.
    pub domain: Domain,
    /// The server's clock; it stands still unless a test moves it.
    pub clock: Arc<FixedClock>,
    #[allow(dead_code, reason = "used by some test modules only")]
    pub store: LocalStore,
    handle: actix_web::dev::ServerHandle,
    /// Last: the database outlives the server that uses it.
    #[allow(dead_code, reason = "held for its Drop; some test modules read it")]
    pub db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; waiting for it is not needed.
        drop(self.handle.stop(false));
    }
}

pub async fn spawn(db: TestDb) -> TestApp {
    spawn_with(db, Settings::default()).await
}

pub async fn spawn_with(db: TestDb, settings: Settings) -> TestApp {
    spawn_querying(db, settings, iops_tests::query_settings()).await
}

/// [`spawn_with`] with the query engine's limits given.
pub async fn spawn_querying(
    db: TestDb,
    settings: Settings,
    query: engine::EngineSettings,
) -> TestApp {
    start(db, |conn, clock, store| {
        iops_tests::domain_with(conn, clock, store, settings, None, query)
    })
    .await
}

/// [`spawn`] with product events going through a buffer of `capacity` events and its
/// worker, as `iops serve` runs them (without one, events are inserted at once).
#[allow(dead_code, reason = "used by some test modules only")]
pub async fn spawn_buffered(db: TestDb, capacity: usize) -> TestApp {
    start(db, |conn, clock, store| {
        let domain = iops_tests::domain(conn, clock, store, Settings::default());
        let sink = domain::EventSink::start(domain.database(), capacity);
        domain.with_events(sink)
    })
    .await
}

/// [`spawn`] with billing: a webhook secret, prices, and a payment provider.
#[allow(dead_code, reason = "used by some test modules only")]
pub async fn spawn_billing(
    db: TestDb,
    config: domain::billing::BillingConfig,
    payments: Option<Arc<dyn domain::billing::Payments>>,
) -> TestApp {
    start(db, |conn, clock, store| {
        iops_tests::domain_billing(conn, clock, store, config, payments)
    })
    .await
}

/// Serves the domain `build` makes over the test's database, clock and store.
async fn start(
    db: TestDb,
    build: impl FnOnce(
        sea_orm::DatabaseConnection,
        Arc<dyn domain::Clock>,
        Arc<dyn domain::storage::DatasetStore>,
    ) -> Domain,
) -> TestApp {
    let conn = db.migrated().await;
    let clock = Arc::new(FixedClock::new(Utc::now()));
    let store = LocalStore::open(db.data_dir().join("datasets"))
        .await
        .expect("open dataset store");
    let domain = build(conn, clock.clone(), Arc::new(store.clone()));
    let options = api::http::ServerOptions {
        workers: Some(2),
        ..Default::default()
    };
    let (addr, handle) = iops_tests::serve(domain.clone(), &options);
    let base = format!("http://{addr}");
    TestApp {
        base,
        client: client(),
        domain,
        clock,
        store,
        handle,
        db,
    }
}

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, with `token` as bearer when given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let req = self.client.request(method, self.url(path));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("send")
    }

    /// The value of the unlabelled series `name` in `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.get("/metrics", None).await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        self.request(method, path, token)
            .json(body)
            .send()
            .await
            .expect("send")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send_json(Method::POST, path, token, body).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send_json(Method::PATCH, path, token, body).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token)
            .send()
            .await
            .expect("send")
    }

    /// Registers `email` (answer asserted `201`) and returns the user object.
    pub async fn register(&self, email: &str) -> Value {
        let res = self
            .post(
                "/api/v1/auth/register",
                None,
                &json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "register {email}");
        res.json().await.expect("user json")
    }

    /// Logs in (answer asserted `200`) and returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self
            .post(
                "/api/v1/auth/login",
                None,
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "login {email}");
        let body: Value = res.json().await.expect("login json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A registered, logged-in user: `(user object, token)`.
    pub async fn user(&self, email: &str) -> (Value, String) {
        let user = self.register(email).await;
        let token = self.login(email, PASSWORD).await;
        (user, token)
    }

    /// A registered, logged-in administrator.
    pub async fn admin(&self, email: &str) -> (Value, String) {
        self.register(email).await;
        self.domain
            .accounts
            .set_admin_by_email(&domain::Admin::local_operator(), email, true)
            .await
            .expect("make admin");
        let token = self.login(email, PASSWORD).await;
        let me = self.get("/api/v1/me", Some(&token)).await;
        (me.json().await.expect("me json"), token)
    }
}

/// Asserts a problem answer: status, `application/problem+json`, the `type` slug, and
/// the RFC 9457 members. Returns the body for further checks.
pub async fn assert_problem(res: Response, status: u16, slug: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let content_type = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = res.json().await.expect("problem json");
    assert_eq!(
        body["type"],
        format!("https://iops.dev/problems/{slug}"),
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert!(body["title"].is_string(), "{body}");
    body
}

impl TestApp {
    /// The server's current time.
    pub fn clock_now(&self) -> chrono::DateTime<Utc> {
        use domain::Clock;
        self.clock.now()
    }
}
