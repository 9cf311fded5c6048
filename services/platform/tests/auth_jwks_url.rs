//! Keys from a JWKS URL: fetched once, cached, re-read on an unknown key id
//! (rotation) but no more often than `jwks_min_refetch_seconds`, kept when the
//! URL goes away. The JWKS is served by a real poem server on 127.0.0.1:0.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glasshouse_platform::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevClaims, SigningKey};
use glasshouse_platform::auth::{AuthError, AuthSettings, Authenticator, JwksSource, Role};
use jsonwebtoken::jwk::JwkSet;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, Server, get, handler};
use tokio::sync::oneshot;

#[derive(Clone, Default)]
struct Published {
    jwks: Arc<Mutex<JwkSet>>,
    hits: Arc<AtomicUsize>,
}

#[handler]
fn jwks(state: Data<&Published>) -> Json<JwkSet> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    Json(state.jwks.lock().unwrap().clone())
}

async fn serve(state: Published) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = *acceptor.local_addr()[0].0.as_socket_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let app = Route::new().at("/.well-known/jwks.json", get(jwks)).data(state);
    let task = tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async {
                    rx.await.ok();
                },
                Some(Duration::from_secs(5)),
            )
            .await;
    });
    (addr, tx, task)
}

fn settings(addr: SocketAddr, min_refetch: u64) -> AuthSettings {
    AuthSettings {
        issuer: DEV_ISSUER.into(),
        audience: DEV_AUDIENCE.into(),
        jwks: JwksSource::Url(format!("http://{addr}/.well-known/jwks.json")),
        leeway_seconds: 30,
        jwks_refresh_seconds: 3600,
        jwks_min_refetch_seconds: min_refetch,
    }
}

fn token(key: &SigningKey) -> String {
    key.mint(&DevClaims::new("cust-7", vec![Role::Customer], Duration::from_secs(300))).unwrap()
}

#[tokio::test]
async fn keys_are_cached_and_rotation_is_picked_up() {
    let (a, b) = (SigningKey::generate_es256().unwrap(), SigningKey::generate_es256().unwrap());
    let state = Published::default();
    *state.jwks.lock().unwrap() = a.jwks();
    let (addr, _stop, _task) = serve(state.clone()).await;
    let auth = Authenticator::from_settings(&settings(addr, 0)).await.unwrap();
    assert_eq!(state.hits.load(Ordering::SeqCst), 1, "read once at start-up");

    for _ in 0..5 {
        assert_eq!(auth.authenticate(&token(&a)).await.unwrap().customer_id.as_str(), "cust-7");
    }
    assert_eq!(state.hits.load(Ordering::SeqCst), 1, "known keys come from the cache");

    // The IdP rotates: B is published next to A; a B token triggers one re-read.
    state.jwks.lock().unwrap().keys.push(b.jwk().clone());
    auth.authenticate(&token(&b)).await.unwrap();
    assert_eq!(state.hits.load(Ordering::SeqCst), 2);
    auth.authenticate(&token(&b)).await.unwrap();
    auth.authenticate(&token(&a)).await.unwrap();
    assert_eq!(state.hits.load(Ordering::SeqCst), 2);

    // A key nobody publishes: re-read (pause is 0 here), still unknown -> 401.
    let stranger = SigningKey::generate_es256().unwrap();
    let err = auth.authenticate(&token(&stranger)).await.unwrap_err();
    assert!(matches!(err, AuthError::UnknownKey(_)), "{err:?}");
    assert_eq!(state.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn unknown_key_ids_cannot_make_it_refetch_in_a_loop() {
    let a = SigningKey::generate_es256().unwrap();
    let state = Published::default();
    *state.jwks.lock().unwrap() = a.jwks();
    let (addr, _stop, _task) = serve(state.clone()).await;
    let auth = Authenticator::from_settings(&settings(addr, 3600)).await.unwrap();
    for _ in 0..10 {
        let forged = token(&SigningKey::generate_es256().unwrap());
        assert!(matches!(auth.authenticate(&forged).await, Err(AuthError::UnknownKey(_))));
    }
    assert_eq!(state.hits.load(Ordering::SeqCst), 1, "no re-read within jwks_min_refetch_seconds");
    auth.authenticate(&token(&a)).await.unwrap();
}

#[tokio::test]
async fn cached_keys_survive_the_jwks_endpoint_going_away() {
    let a = SigningKey::generate_es256().unwrap();
    let state = Published::default();
    *state.jwks.lock().unwrap() = a.jwks();
    let (addr, stop, task) = serve(state.clone()).await;
    let auth = Authenticator::from_settings(&settings(addr, 0)).await.unwrap();
    drop(stop);
    task.await.unwrap();

    auth.authenticate(&token(&a)).await.unwrap();
    // An unknown kid now triggers a failing re-read; the old key still works after it.
    let stranger = SigningKey::generate_es256().unwrap();
    assert!(matches!(auth.authenticate(&token(&stranger)).await, Err(AuthError::UnknownKey(_))));
    auth.authenticate(&token(&a)).await.unwrap();

    // And a service cannot start against a dead JWKS URL.
    let err = Authenticator::from_settings(&settings(addr, 0)).await.unwrap_err();
    assert!(err.to_string().contains("fetch JWKS"), "{err}");
}

#[tokio::test]
async fn periodic_refresh_stops_trusting_removed_keys() {
    let (a, b) = (SigningKey::generate_es256().unwrap(), SigningKey::generate_es256().unwrap());
    let state = Published::default();
    *state.jwks.lock().unwrap() = a.jwks();
    let (addr, _stop, _task) = serve(state.clone()).await;
    let mut s = settings(addr, 3600);
    s.jwks_refresh_seconds = 0; // every request finds the keys stale
    let auth = Authenticator::from_settings(&s).await.unwrap();

    // The IdP retires A and publishes B.
    *state.jwks.lock().unwrap() = b.jwks();
    // Requests keep being answered from the cache while the refresh runs in
    // the background; once it has landed, A is refused and B accepted.
    let a_token = token(&a);
    glasshouse_tests::poll::until(
        "the background JWKS refresh to drop key A",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            Ok(match auth.authenticate(&a_token).await {
                Err(AuthError::UnknownKey(_)) => Some(()),
                _ => None,
            })
        },
    )
    .await
    .unwrap();
    auth.authenticate(&token(&b)).await.unwrap();
    assert!(state.hits.load(Ordering::SeqCst) >= 2);
}
