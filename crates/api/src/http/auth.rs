//! Who is calling: `Authorization: Bearer <token>` resolved against the database on every
//! request (so logout, password changes and tier changes apply at once, in every process).
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use super::AppState;
use super::problem::Problem;

/// The authenticated caller of a request, as the account is now, and the token it
/// presented.
#[derive(Clone)]
pub struct CurrentUser {
    /// Who is calling (the domain checks roles on it).
    pub caller: domain::Caller,
    /// The bearer secret (logout revokes it; a password change keeps it alive).
    pub token: String,
    /// The request's id (`x-request-id`), which the activity log records with changes.
    pub request_id: Option<String>,
}

/// Never prints the bearer secret.
impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("caller", &self.caller)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl CurrentUser {
    /// The caller's account id.
    pub fn id(&self) -> domain::Id {
        self.caller.id()
    }

    /// The caller as the author of a change: their id and the request's.
    pub fn actor(&self) -> domain::Actor {
        domain::Actor::new(self.caller.id(), self.request_id.clone())
    }
}

/// The secret of an `Authorization: Bearer <secret>` header, if there is one.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then(|| secret.to_owned())
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, Problem> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| Problem::internal(&std::io::Error::other("AppState is not registered")))
}

async fn authenticate(req: HttpRequest) -> Result<CurrentUser, Problem> {
    let state = state(&req)?;
    let Some(token) = bearer_token(&req) else {
        return Err(Problem::unauthorized(
            "this endpoint needs an Authorization: Bearer <token> header",
        ));
    };
    let caller = state.domain.tokens.authenticate(&token).await?;
    let request_id = req
        .extensions()
        .get::<super::request_id::RequestId>()
        .map(|id| id.0.clone());
    Ok(CurrentUser {
        caller,
        token,
        request_id,
    })
}

impl FromRequest for CurrentUser {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// The admin proof of an authenticated caller ([`domain::Caller::admin`] decides; anyone
/// else gets its `403`). An extractor so that the check comes before the request's other
/// parts are read.
#[derive(Debug)]
pub struct AdminUser(pub domain::Admin);

impl FromRequest for AdminUser {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let current = authenticate(req).await?;
            Ok(AdminUser(current.caller.admin()?))
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "bearer abc"))
            .to_http_request();
        assert_eq!(bearer_token(&req).as_deref(), Some("abc"));
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic abc"))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer "))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
        assert_eq!(
            bearer_token(&TestRequest::default().to_http_request()),
            None
        );
    }
}
