//! JWT bearer authentication: who is calling, and may they.
//!
//! - [`Authenticator`] validates `Authorization: Bearer <jwt>`: signature
//!   (RS256 or ES256 only, the algorithm pinned by the key, so a token cannot
//!   pick a weaker one), issuer, audience, `exp`/`nbf` with a small leeway,
//!   and the claims `sub` (the customer id) and `roles`. Keys come from a JWKS
//!   file or URL, are cached, and are re-read when a token names a key id the
//!   cache does not know (key rotation) — at most once per
//!   `jwks_min_refetch_seconds`, so a flood of forged key ids cannot turn the
//!   service into a JWKS-fetching machine.
//! - [`Principal`] is the result: `{customer_id, roles}`. It is a poem
//!   extractor (handlers take it as an argument), [`RequireRole`] is a
//!   middleware for whole routes, and [`BearerAuth`] is the poem-openapi
//!   security scheme (documented in the spec as HTTP bearer, JWT).
//! - Failures are problem+json: 401 `unauthenticated` for a missing, malformed,
//!   expired, wrongly addressed or unverifiable token (the `detail` says which,
//!   as RFC 6750 allows), 403 `forbidden` for a missing role.
//! - [`dev`]: key generation and token minting for the local stack and tests
//!   (used by the `glasshouse-dev-token` binary). Issuer `glasshouse-local`,
//!   audience `glasshouse`.
//!
//! # Layout
//!
//! This file holds the caller's identity ([`Role`], [`Principal`]); `verify`
//! the settings, the key cache and the token checks; `web` the poem glue
//! (problem conversion, extractor, middleware, security scheme); [`dev`] the
//! local keys. Everything public is re-exported here, so the paths are
//! `glasshouse_platform::auth::{Authenticator, BearerAuth, ...}`.

use std::collections::BTreeSet;
use std::fmt;

use glasshouse_contracts::CustomerId;
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

pub mod dev;
mod verify;
mod web;

pub use verify::{AuthError, AuthSettings, Authenticator, JwksSource};
pub use web::{BearerAuth, RequireRole, RequireRoleEndpoint};

/// The roles the services know. Tokens may carry others; they are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Places and manages their own orders.
    Customer,
    /// Sees every order; operates the system.
    Admin,
}

impl Role {
    /// `customer` or `admin`, as in the token.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    /// The role named `s`, if known.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: whose orders these are.
    pub customer_id: CustomerId,
    /// Known roles from the token's `roles` claim.
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// Whether the caller has `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }

    /// `Ok` if the caller has `role`, else the 403 `forbidden` problem.
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        if self.has_role(role) { Ok(()) } else { Err(Problem::forbidden(format!("This requires the `{role}` role."))) }
    }

    /// Whether the caller may see a resource owned by `owner`: the owner
    /// or an admin. Callers answer 404 (not 403) when this is false, so
    /// order ids of other customers cannot be probed.
    pub fn can_access(&self, owner: &CustomerId) -> bool {
        &self.customer_id == owner || self.is_admin()
    }
}
