//! Who is calling: `Authorization: Bearer <token>` resolved against the database on every
//! request (so logout, password changes and tier changes apply at once, in every process).
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use entity::users;

use super::AppState;
use super::problem::Problem;

/// The authenticated user of a request, as the row is now, and the token it presented.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub user: users::Model,
    /// The bearer secret (logout revokes it; a password change keeps it alive).
    pub token: String,
}

impl CurrentUser {
    pub fn id(&self) -> domain::Id {
        self.user.id
    }
}

/// A [`CurrentUser`] with `is_admin`; anyone else gets `403`.
#[derive(Clone, Debug)]
pub struct AdminUser(pub CurrentUser);

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
    match state.domain.tokens.authenticate(&token).await {
        Ok(user) => Ok(CurrentUser { user, token }),
        Err(domain::Error::Unauthorized) => Err(Problem::unauthorized(
            "the token is invalid, expired or revoked",
        )),
        Err(e) => Err(e.into()),
    }
}

impl FromRequest for CurrentUser {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

impl FromRequest for AdminUser {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let current = authenticate(req).await?;
            if current.user.is_admin {
                Ok(AdminUser(current))
            } else {
                Err(Problem::forbidden())
            }
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
