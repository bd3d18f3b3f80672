//! The REST API: application state, the route table and the server as `iops serve` and
//! the tests run it.
pub mod auth;
pub mod dto;
pub mod extract;
pub mod html;
pub mod metrics;
pub mod openapi;
pub mod peer;
pub mod problem;
pub mod request_id;
pub mod routes;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware, web};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

/// What every handler can reach, as `web::Data<AppState>`.
#[derive(Clone)]
pub struct AppState {
    pub domain: domain::Domain,
    pub metrics: Arc<metrics::Metrics>,
}

impl AppState {
    pub fn new(domain: domain::Domain) -> Self {
        Self {
            domain,
            metrics: Arc::new(metrics::Metrics::new()),
        }
    }
}

/// How the server treats connections and shutdown.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Worker threads (`None`: one per core).
    pub workers: Option<usize>,
    /// After a stop signal, how long in-flight requests may take to finish.
    pub shutdown_timeout: Duration,
    /// Time allowed to send the request head; a client slower than this is cut off.
    pub client_request_timeout: Duration,
    /// Time allowed for the client to close its side after the answer.
    pub client_disconnect_timeout: Duration,
    /// Idle time allowed on a keep-alive connection.
    pub keep_alive: Duration,
    /// Longest a request body may stall (no bytes arriving while the handler waits for
    /// them) before the request is refused (`408`) and its connection closed. actix bounds
    /// only the head; without this a client trickling its body would hold a connection
    /// forever. Time the server itself spends between reads does not count.
    pub body_idle_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            workers: None,
            shutdown_timeout: Duration::from_secs(30),
            client_request_timeout: Duration::from_secs(10),
            client_disconnect_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The server on an already-bound listener (binding is the caller's, so that a port in
/// use is a clean error and tests can bind port 0). It stops gracefully when `shutdown`
/// resolves; with `None` it only stops when its handle says so (no signal handlers).
///
/// Header size: actix-http caps the request head itself (128 KiB of buffered head, at
/// most 96 headers) and answers `431` beyond that; actix offers no setting to lower it.
pub fn build_server(
    state: AppState,
    listener: TcpListener,
    options: &ServerOptions,
    shutdown: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
) -> std::io::Result<Server> {
    let body_idle = extract::BodyIdleTimeout(options.body_idle_timeout);
    // The document once, for the /docs UI and the 405 answers; each worker's app below
    // registers the same routes it was collected from.
    let document = openapi::document();
    let known_paths = web::Data::new(routes::KnownPaths::of(&document));
    let mut server = HttpServer::new(move || {
        // Built on each worker's thread: its hot-path connections are its own.
        let data = web::Data::new(AppState {
            domain: state.domain.for_this_thread(),
            metrics: state.metrics.clone(),
        });
        App::new()
            .into_utoipa_app()
            .configure(routes::configure)
            .into_app()
            // The UI's assets are relative to `/docs/`.
            .service(SwaggerUi::new("/docs/{_:.*}").url("/api/openapi.json", document.clone()))
            .app_data(data)
            .app_data(known_paths.clone())
            .app_data(extract::json_config())
            .app_data(extract::query_config())
            .app_data(extract::path_config())
            .app_data(body_idle)
            .default_service(web::to(routes::fallback))
            .wrap(middleware::from_fn(extract::body_idle_timeout))
            // Outermost last: the request id wraps everything, metrics see final statuses,
            // and the request span covers all but the id's echo.
            .wrap(middleware::from_fn(metrics::middleware))
            .wrap(request_id::logger())
            .wrap(middleware::from_fn(request_id::middleware))
    })
    .on_connect(peer::remember)
    .shutdown_timeout(options.shutdown_timeout.as_secs())
    .client_request_timeout(options.client_request_timeout)
    .client_disconnect_timeout(options.client_disconnect_timeout)
    .keep_alive(options.keep_alive);
    if let Some(workers) = options.workers {
        server = server.workers(workers);
    }
    server = match shutdown {
        Some(signal) => server.shutdown_signal(signal),
        None => server.disable_signals(),
    };
    Ok(server.listen(listener)?.run())
}
