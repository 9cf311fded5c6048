//! The poem glue: failures as problem+json, [`Principal`] as an extractor,
//! the [`RequireRole`] middleware and the [`BearerAuth`] security scheme.

use poem::http::header::{HeaderValue, WWW_AUTHENTICATE};
use poem::{Endpoint, FromRequest, Middleware, Request, RequestBody};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::{AuthError, Authenticator, Principal, Role};
use crate::problem::Problem;

impl From<AuthError> for Problem {
    fn from(err: AuthError) -> Self {
        // RFC 6750 section 3: no error code when no token was sent.
        let challenge = match err {
            AuthError::Missing => HeaderValue::from_static("Bearer realm=\"glasshouse\""),
            _ => HeaderValue::from_static("Bearer realm=\"glasshouse\", error=\"invalid_token\""),
        };
        Problem::unauthenticated(err.to_string()).with_header(WWW_AUTHENTICATE, challenge)
    }
}

impl From<AuthError> for poem::Error {
    fn from(err: AuthError) -> Self {
        Problem::from(err).into()
    }
}

fn missing_authenticator() -> poem::Error {
    Problem::internal(anyhow::anyhow!("no Authenticator in the request data: add `.data(authenticator)` to the route")).into()
}

/// Handlers take `principal: Principal` as an argument; the request needs an
/// [`Authenticator`] in its data (`route.data(authenticator)`). Reuses the
/// principal a [`RequireRole`] middleware already put in the extensions.
impl<'a> FromRequest<'a> for Principal {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        if let Some(p) = req.extensions().get::<Principal>() {
            return Ok(p.clone());
        }
        let auth = req.data::<Authenticator>().ok_or_else(missing_authenticator)?;
        Ok(auth.authenticate_headers(req.headers()).await?)
    }
}

/// Middleware: the wrapped endpoint is reached only with a valid token
/// carrying `.0`; otherwise 401 or 403 problem+json. The [`Principal`] is put
/// in the request extensions for the handler.
#[derive(Debug, Clone, Copy)]
pub struct RequireRole(pub Role);

impl<E: Endpoint> Middleware<E> for RequireRole {
    type Output = RequireRoleEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequireRoleEndpoint { inner: ep, role: self.0 }
    }
}

/// The endpoint produced by [`RequireRole`].
#[derive(Debug)]
pub struct RequireRoleEndpoint<E> {
    inner: E,
    role: Role,
}

impl<E: Endpoint> Endpoint for RequireRoleEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let principal = Principal::from_request_without_body(&req).await?;
        principal.require(self.role)?;
        req.extensions_mut().insert(principal);
        self.inner.call(req).await
    }
}

/// The poem-openapi security scheme: an operation that takes
/// `auth: BearerAuth` is documented as requiring an HTTP bearer JWT and gets
/// the validated [`Principal`] as `auth.0`. Role checks go in the handler:
/// `auth.0.require(Role::Admin)?`.
///
/// A request without the header is refused by poem-openapi before the
/// checker runs, as a plain 401; the [`crate::problem::ProblemJson`]
/// middleware turns it into the `unauthenticated` problem.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "bearer_checker")]
pub struct BearerAuth(pub Principal);

async fn bearer_checker(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let auth = req.data::<Authenticator>().ok_or_else(missing_authenticator)?;
    Ok(auth.authenticate(&bearer.token).await?)
}
