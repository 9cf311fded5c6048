//! Secrets never reach the logs: the three services run a short order flow
//! (including refused tokens); their captured output is then searched for the
//! database credentials, the JWT signing key, the bearer tokens and the cursor key.

use std::time::Duration;

use glasshouse_platform::auth::Role;
use glasshouse_tests::poll;
use glasshouse_tests::services::Saga;
use glasshouse_tests::stack;
use secrecy::ExposeSecret;

use crate::support::{place, seed_item, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_key_or_token_in_the_logs() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();

    // A short flow, plus the tokens a service refuses (and might log).
    let ann = saga.token("ann", Role::Customer);
    let admin = saga.token("ops", Role::Admin);
    seed_item(&http, &saga, "SEC-1", 5).await?;
    let id = place(&http, &saga, &ann, "sec-1", "SEC-1").await?;
    poll::until("the order confirmed", Duration::from_secs(60), Duration::from_millis(200), || async {
        let a = send(http.get(saga.order.url(&format!("/orders/{id}"))).bearer_auth(&ann)).await?;
        Ok((a.body["status"] == "CONFIRMED").then_some(()))
    })
    .await?;
    let (head, rest) = ann.split_once('.').unwrap();
    let tampered = format!("{head}.{}x", rest);
    for (svc, token) in [(&saga.order, &tampered), (&saga.inventory, &tampered), (&saga.notification, &tampered)] {
        let a = send(http.get(svc.url("/orders?limit=1")).bearer_auth(token)).await?;
        assert!(a.status == 401 || a.status == 404, "{}: {}", svc.name, a.status);
    }
    let a = send(http.get(saga.notification.url(&format!("/notifications?order_id={id}"))).bearer_auth(&tampered)).await?;
    a.assert_problem(401, "unauthenticated");

    // The secrets, in every form a log line could carry them.
    let pem = saga.key.private_pem().expose_secret().to_owned();
    // The stack's database password is the user name too ("glasshouse", a
    // loopback-only development secret), so it is searched for in the forms a
    // leak takes: the URLs the services were given, their userinfo, and
    // key=value renderings of a connect options struct.
    let pw = stack::DB_PASSWORD;
    let mut secrets: Vec<(String, String)> = vec![
        ("orders database URL".into(), saga.orders_db_url.clone()),
        ("inventory database URL".into(), saga.inventory_db_url.clone()),
        ("database URL userinfo".into(), format!(":{pw}@")),
        ("database password field".into(), format!("password: \"{pw}\"")),
        ("database password field".into(), format!("password: Some(\"{pw}\")")),
        ("database password field".into(), format!("password={pw}")),
        ("database password field".into(), format!("\"password\":\"{pw}\"")),
        ("cursor key".into(), "local-dev-cursor-key".into()),
    ];
    for (who, token) in [("customer token", &ann), ("admin token", &admin), ("tampered token", &tampered)] {
        secrets.push((who.into(), token.clone()));
        // The signature alone is enough to replay nothing, but never belongs in a log.
        secrets.push((format!("{who} signature"), token.rsplit('.').next().unwrap_or_default().to_owned()));
    }
    for line in pem.lines().filter(|l| !l.starts_with("-----") && l.len() >= 16) {
        secrets.push(("JWT private key (PEM body line)".into(), line.to_owned()));
    }
    // Logs are written as they happen; the flow above is done, so they hold it.
    let mut leaks = Vec::new();
    let mut total = 0;
    for svc in [&saga.order, &saga.inventory, &saga.notification] {
        let log = std::fs::read_to_string(&svc.log)?;
        total += log.len();
        for (what, secret) in &secrets {
            if log.contains(secret.as_str()) {
                leaks.push(format!("{}: {what}", svc.name));
            }
        }
    }
    assert!(total > 1000, "the services logged almost nothing ({total} bytes): the search proves nothing");
    assert!(leaks.is_empty(), "secrets in the logs: {leaks:?}");

    saga.stop().await
}
