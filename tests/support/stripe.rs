//! A local stand-in for Stripe's HTTP API and the signing side of its webhooks: the real
//! `StripeClient` talks to it over HTTP, it records every request as received and answers
//! in the shapes Stripe documents (a Checkout Session object, or an error object).
//! Webhook events are signed here with HMAC-SHA256 exactly as Stripe signs them,
//! independently of the server's verification code.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The form fields, in order, decoded.
    pub form: Vec<(String, String)>,
}

impl Recorded {
    /// The value of form field `key`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// How the fake answers checkout requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// `200` with a Checkout Session.
    Succeed,
    /// `400` with Stripe's error object (an unknown price, say).
    Refuse,
    /// Answers after this long (longer than the client's timeout).
    Hang(Duration),
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Recorded>>,
    behaviour: Mutex<Option<Behaviour>>,
}

/// A running fake; stops when dropped.
pub struct StripeFake {
    /// `http://127.0.0.1:<port>`: `IOPS_STRIPE_API_BASE`.
    pub base: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for StripeFake {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// The secret key the tests configure; it must appear in no answer and no log.
pub const API_KEY: &str = "sk_test_iops_secret_key_4f9a";

async fn checkout(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<State>>,
) -> HttpResponse {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    state.requests.lock().unwrap().push(Recorded {
        method: request.method().to_string(),
        path: request.path().to_owned(),
        authorization: request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        form: form.clone(),
    });
    let behaviour = state
        .behaviour
        .lock()
        .unwrap()
        .unwrap_or(Behaviour::Succeed);
    match behaviour {
        Behaviour::Hang(pause) => {
            tokio::time::sleep(pause).await;
        }
        Behaviour::Refuse => {
            return HttpResponse::BadRequest().json(json!({"error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "line_items[0][price]",
                "message": format!("No such price; key {API_KEY}"),
            }}));
        }
        Behaviour::Succeed => {}
    }
    let field = |key: &str| {
        form.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| Value::from(v.clone()))
            .unwrap_or(Value::Null)
    };
    let id = format!("cs_test_{}", uuid::Uuid::new_v4().simple());
    HttpResponse::Ok().json(json!({
        "id": id,
        "object": "checkout.session",
        "mode": field("mode"),
        "client_reference_id": field("client_reference_id"),
        "customer": field("customer"),
        "status": "open",
        "payment_status": "unpaid",
        "url": format!("https://checkout.stripe.com/c/pay/{id}"),
    }))
}

impl StripeFake {
    pub fn start() -> StripeFake {
        let state = Arc::new(State::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/checkout/sessions", web::post().to(checkout))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        StripeFake {
            base,
            state,
            handle,
        }
    }

    pub fn behave(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().unwrap() = Some(behaviour);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The real client, pointed here, with [`API_KEY`].
    pub fn client(&self) -> Arc<dyn domain::billing::Payments> {
        Arc::new(
            domain::billing::StripeClient::new(
                &self.base,
                API_KEY.to_owned(),
                Duration::from_secs(2),
            )
            .expect("Stripe client"),
        )
    }
}

/// The `Stripe-Signature` header Stripe would send for `payload` at unix time `t`, with
/// one `v1` per secret (two while a secret is being rolled).
pub fn signature(secrets: &[&str], t: i64, payload: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC key");
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        header.push_str(&format!(",v1={}", hex::encode(mac.finalize().into_bytes())));
    }
    header
}

/// A Stripe event of `kind` about `object`, created at unix time `created`.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": false,
        "type": kind,
        "data": {"object": object},
    })
}

/// A subscription object as Stripe sends it in `customer.subscription.*` events.
pub fn subscription(
    id: &str,
    customer: &str,
    status: &str,
    price: &str,
    user: Option<&str>,
) -> Value {
    let metadata = match user {
        Some(user) => json!({"user_id": user}),
        None => json!({}),
    };
    json!({
        "id": id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "current_period_end": 1_900_000_000,
        "metadata": metadata,
        "items": {"object": "list", "data": [{
            "id": "si_1",
            "object": "subscription_item",
            "price": {"id": price, "object": "price"},
        }]},
    })
}
