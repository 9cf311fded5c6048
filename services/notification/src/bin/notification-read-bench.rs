//! How Notification's reads scale with the collection: grows one
//! `notifications` collection to each size (bulk `insert_many` through the
//! driver), then times the exact store query `GET /notifications` runs
//! ([`Store::list`]: by `order_id` for the order's owner, and by
//! `customer_id`, newest first, a page of 21) and asks the server to
//! `explain` it.
//!
//! ```text
//! cargo run -p glasshouse-notification --release --bin notification-read-bench -- \
//!     --url mongodb://127.0.0.1:27017/ --sizes 1000,10000,100000,1000000 \
//!     --json target/bench/notification-reads.json --doc docs/performance.md
//! ```
//!
//! It writes into a scratch database (`bench_notification_reads_<pid>`),
//! dropped at the end unless `--keep`. With `--doc`, the table between the
//! `notification-read-bench` markers of that file is replaced.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use glasshouse_notification::api::DEFAULT_PAGE;
use glasshouse_notification::settings::DatabaseSettings;
use glasshouse_notification::store::{COLLECTION, NotificationDoc, Scope, Store};
use mongodb::bson::{self, Bson, Document, doc};
use serde_json::json;
use uuid::Uuid;

/// Notifications per order (created, confirmed, and two more) and orders per customer.
const PER_ORDER: usize = 4;
const ORDERS_PER_CUSTOMER: usize = 5;
const BATCH: usize = 1_000;
const BEGIN: &str = "<!-- notification-read-bench:begin -->";
const END: &str = "<!-- notification-read-bench:end -->";

#[derive(Parser, Debug)]
#[command(about = "Times Notification's reads by order_id and customer_id as the collection grows")]
struct Args {
    /// MongoDB URL [default: $GH_MONGODB_URL, else mongodb://127.0.0.1:27017/]
    #[arg(long)]
    url: Option<String>,
    /// Collection sizes to measure at, ascending, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000,1000000")]
    sizes: Vec<usize>,
    /// Reads of each kind timed at each size (after 20 warm-up reads)
    #[arg(long, default_value_t = 300)]
    reads: usize,
    /// Write the results as JSON here
    #[arg(long)]
    json: Option<PathBuf>,
    /// Replace the table between the markers in this Markdown file
    #[arg(long)]
    doc: Option<PathBuf>,
    /// Keep the scratch database
    #[arg(long)]
    keep: bool,
}

/// A small deterministic generator: which existing order or customer to read.
struct XorShift(u64);
impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

struct Orders {
    /// (order_id, customer_id) of every order stored so far.
    ids: Vec<(String, String)>,
    stored: usize,
    clock_ms: i64,
}

impl Orders {
    /// The next `n` documents: consecutive notifications of consecutive orders.
    fn next_docs(&mut self, n: usize) -> Vec<NotificationDoc> {
        (0..n)
            .map(|_| {
                let k = self.stored;
                self.stored += 1;
                if k.is_multiple_of(PER_ORDER) {
                    let order = self.ids.len();
                    let customer = if order.is_multiple_of(ORDERS_PER_CUSTOMER) {
                        format!("cust-{}", Uuid::now_v7().simple())
                    } else {
                        self.ids[order - 1].1.clone()
                    };
                    self.ids.push((Uuid::now_v7().to_string(), customer));
                }
                let (order_id, customer_id) = self.ids[self.ids.len() - 1].clone();
                self.clock_ms += 7;
                let at = bson::DateTime::from_millis(self.clock_ms);
                NotificationDoc {
                    id: Uuid::now_v7().to_string(),
                    event_id: Uuid::now_v7().to_string(),
                    event_type: ["order.created", "order.confirmed", "order.cancelled", "order.rejected"][k % PER_ORDER].to_owned(),
                    subject: format!("Your order {} was updated", &order_id[..8]),
                    body: format!("Hello {customer_id}, your order {order_id} changed state. Total: 42.00 EUR. Thank you for shopping with Glasshouse."),
                    order_id,
                    customer_id,
                    channel: "email".to_owned(),
                    occurred_at: at,
                    created_at: at,
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct Timing {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Documents each read returned, on average.
    mean_returned: f64,
}

fn timing(mut samples: Vec<Duration>, returned: usize) -> Timing {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1).min(samples.len() - 1)];
    let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
    Timing {
        p50_ms: ms(at(0.50)),
        p99_ms: ms(at(0.99)),
        max_ms: ms(at(1.0)),
        mean_returned: (returned as f64 / samples.len() as f64 * 10.0).round() / 10.0,
    }
}

/// Times `reads` calls of the store query for scopes drawn by `scope`.
async fn time_reads(store: &Store, reads: usize, mut scope: impl FnMut() -> Scope) -> anyhow::Result<Timing> {
    let mut samples = Vec::with_capacity(reads);
    let mut returned = 0;
    for i in 0..reads + 20 {
        let s = scope();
        let t0 = Instant::now();
        let docs = store.list(&s, None, DEFAULT_PAGE + 1).await?;
        let took = t0.elapsed();
        anyhow::ensure!(!docs.is_empty(), "no notification found for {s:?}");
        if i >= 20 {
            samples.push(took);
            returned += docs.len();
        }
    }
    Ok(timing(samples, returned))
}

/// What the server says it does for `filter`: FerretDB's pushdown flags and
/// the plan nodes of the PostgreSQL plan it returns as `queryPlanner`.
#[derive(Debug, Clone, serde::Serialize)]
struct Explained {
    filter_pushdown: Option<bool>,
    sort_pushdown: Option<bool>,
    limit_pushdown: Option<bool>,
    /// "Node Type on relation using index", depth first.
    plan: Vec<String>,
}

async fn explain(store: &Store, filter: Document) -> anyhow::Result<Explained> {
    let reply = store
        .database()
        .run_command(doc! {
            "explain": { "find": COLLECTION, "filter": filter, "sort": { "created_at": -1, "_id": -1 }, "limit": DEFAULT_PAGE + 1 },
            "verbosity": "queryPlanner",
        })
        .await
        .context("explain")?;
    let mut plan = Vec::new();
    if let Ok(qp) = reply
        .get_array("queryPlanner")
        .map(|a| a.to_vec())
        .or_else(|_| reply.get_document("queryPlanner").map(|d| vec![Bson::Document(d.clone())]))
    {
        for p in qp {
            walk(&p, &mut plan);
        }
    }
    Ok(Explained {
        filter_pushdown: reply.get_bool("filterPushdown").ok(),
        sort_pushdown: reply.get_bool("sortPushdown").ok(),
        limit_pushdown: reply.get_bool("limitPushdown").ok(),
        plan,
    })
}

fn walk(node: &Bson, out: &mut Vec<String>) {
    let Bson::Document(d) = node else { return };
    if let Some(p) = d.get("Plan") {
        return walk(p, out);
    }
    if let Ok(t) = d.get_str("Node Type") {
        let mut s = t.to_owned();
        if let Ok(r) = d.get_str("Relation Name") {
            let _ = write!(s, " on {r}");
        }
        if let Ok(i) = d.get_str("Index Name") {
            let _ = write!(s, " using {i}");
        }
        for k in ["Index Cond", "Recheck Cond", "Filter"] {
            if let Ok(c) = d.get_str(k) {
                let _ = write!(s, " [{k}: {c}]");
            }
        }
        out.push(s);
    }
    if let Ok(children) = d.get_array("Plans") {
        for c in children {
            walk(c, out);
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    documents: usize,
    insert_seconds: f64,
    by_order: Timing,
    by_customer: Timing,
    explain_by_order: Explained,
    explain_by_customer: Explained,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        !args.sizes.is_empty() && args.sizes.windows(2).all(|w| w[0] < w[1]) && args.sizes[0] >= PER_ORDER * ORDERS_PER_CUSTOMER,
        "--sizes must ascend and start at {} or more, got {:?}",
        PER_ORDER * ORDERS_PER_CUSTOMER,
        args.sizes
    );
    anyhow::ensure!(args.reads >= 1, "--reads must be 1 or more, got {}", args.reads);
    let url = args.url.clone().or_else(|| std::env::var("GH_MONGODB_URL").ok()).unwrap_or_else(|| "mongodb://127.0.0.1:27017/".to_owned());
    let name = format!("bench_notification_reads_{}", std::process::id());
    let settings = DatabaseSettings { url: url.clone().into(), name: name.clone(), server_selection_timeout_ms: 10_000 };
    let store = Store::connect(&settings).await?;
    store.ensure_indexes().await?;
    let result = run(&args, &store).await;
    if !args.keep {
        store.database().drop().await.context("drop the scratch database")?;
    }
    let rows = result?;

    let server = store.database().run_command(doc! { "buildInfo": 1 }).await?;
    let version = server
        .get_str("ferretdbVersion")
        // A module build of FerretDB has no version stamped in: it says `unknown`.
        .map(|v| {
            if v == "unknown" {
                "FerretDB (module build, no version stamped; the stack pins v1.24.2)".to_owned()
            } else {
                format!("FerretDB {v}")
            }
        })
        .or_else(|_| server.get_str("version").map(|v| format!("MongoDB wire {v}")))
        .unwrap_or_else(|_| "?".to_owned());
    // FerretDB's `explain` returns a PostgreSQL plan only on its PostgreSQL backend.
    let backend =
        if rows.iter().any(|r| !r.explain_by_order.plan.is_empty()) { "PostgreSQL" } else { "no PostgreSQL plan in explain" }.to_owned();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");

    let mut table = format!(
        "{date}; server {version}, backend {backend}; {} timed reads of each kind per size; load average at the end: {load}.\n\n\
         | documents | bulk insert, s | by order_id p50 / p99, ms | by customer_id p50 / p99, ms | plan by order_id | plan by customer_id |\n\
         | ---: | ---: | ---: | ---: | --- | --- |\n",
        args.reads
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {:.1} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {} |",
            r.documents,
            r.insert_seconds,
            r.by_order.p50_ms,
            r.by_order.p99_ms,
            r.by_customer.p50_ms,
            r.by_customer.p99_ms,
            short_plan(&r.explain_by_order),
            short_plan(&r.explain_by_customer)
        );
    }
    print!("{table}");
    for r in &rows {
        println!("explain at {}: by order_id {:?}; by customer_id {:?}", r.documents, r.explain_by_order, r.explain_by_customer);
    }
    if let Some(path) = &args.json {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let body = json!({
            "date": date, "server_version": version, "backend": backend, "load_average": load,
            "reads_per_size": args.reads, "page": DEFAULT_PAGE + 1,
            "per_order": PER_ORDER, "orders_per_customer": ORDERS_PER_CUSTOMER,
            "measured": "glasshouse_notification::store::Store::list (the query GET /notifications runs), through the mongodb driver",
            "rows": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&body)?).with_context(|| format!("write {}", path.display()))?;
    }
    if let Some(path) = &args.doc {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
            anyhow::bail!("{} has no {BEGIN} ... {END} markers", path.display());
        };
        let updated = format!("{}{BEGIN}\n{table}{}", &text[..b], &text[e..]);
        std::fs::write(path, updated).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// Node types, with the index (FerretDB's name for it, and whether it is the stack's GIN twin).
fn short_plan(e: &Explained) -> String {
    let nodes: Vec<String> = e
        .plan
        .iter()
        .map(|n| {
            let n = n.split(" [").next().unwrap_or(n);
            let node = n.split(" on ").next().unwrap_or(n).split(" using ").next().unwrap_or(n);
            match n.split(" using ").nth(1) {
                Some(i) => {
                    let which =
                        ["order_newest_first", "customer_newest_fi", "event_id_unique"].into_iter().find(|k| i.contains(k)).unwrap_or(i);
                    format!("{node} ({which}{})", if i.ends_with("_gin") { ", GIN twin" } else { "" })
                }
                None => node.to_owned(),
            }
        })
        .collect();
    format!("{} (filter pushdown: {})", nodes.join(" → "), e.filter_pushdown.map_or("?".to_owned(), |b| b.to_string()))
}

async fn run(args: &Args, store: &Store) -> anyhow::Result<Vec<Row>> {
    let coll = store.database().collection::<NotificationDoc>(COLLECTION);
    let mut orders = Orders { ids: Vec::new(), stored: 0, clock_ms: 1_780_000_000_000 };
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut rows = Vec::new();
    for &size in &args.sizes {
        let t0 = Instant::now();
        while orders.stored < size {
            let docs = orders.next_docs(BATCH.min(size - orders.stored));
            coll.insert_many(docs).await.context("insert_many")?;
        }
        let insert_seconds = t0.elapsed().as_secs_f64();
        eprintln!("{size} documents stored ({insert_seconds:.1} s for this step); timing reads");
        let ids = &orders.ids;
        // The reads GET /notifications runs: a customer reading one order of theirs, and all of theirs.
        let by_order = time_reads(store, args.reads, || {
            let (o, c) = &ids[rng.below(ids.len())];
            Scope::Order { order_id: o.clone(), owner: Some(c.clone()) }
        })
        .await?;
        let by_customer = time_reads(store, args.reads, || Scope::Customer(ids[rng.below(ids.len())].1.clone())).await?;
        let (o, c) = &ids[rng.below(ids.len())];
        let explain_by_order = explain(store, doc! { "order_id": o, "customer_id": c }).await?;
        let explain_by_customer = explain(store, doc! { "customer_id": c }).await?;
        eprintln!("  by order_id {by_order:?}\n  by customer_id {by_customer:?}\n  plans {explain_by_order:?} {explain_by_customer:?}");
        rows.push(Row { documents: size, insert_seconds, by_order, by_customer, explain_by_order, explain_by_customer });
    }
    Ok(rows)
}
