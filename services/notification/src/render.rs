//! What the customer reads: subject and body of the (simulated) e-mail for
//! each order event. Pure functions, so every wording is unit-tested.

use glasshouse_contracts::{CancellationReason, CustomerId, Event, EventType, Money, OrderCreated, Payload, RejectionReason};

/// The channel notifications go out on. Only e-mail exists, and it is
/// simulated: the message is stored (and listed by the API), never sent.
pub const CHANNEL_EMAIL: &str = "email";

/// A notification ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Who it is for: the owner of the order.
    pub customer_id: CustomerId,
    pub subject: String,
    pub body: String,
}

/// The event types that produce a notification: the order's lifecycle as
/// the customer sees it. Inventory's events are internal steps of the saga;
/// their outcome reaches the customer through `order.confirmed|rejected`.
pub const NOTIFIED: [EventType; 4] =
    [EventType::OrderCreated, EventType::OrderConfirmed, EventType::OrderRejected, EventType::OrderCancelled];

/// Renders the notification for `event`, or `None` for an event type the
/// customer is not told about (see [`NOTIFIED`]).
pub fn render(event: &Event) -> Option<Rendered> {
    let id = event.order_id();
    let (customer_id, subject, body) = match event.payload() {
        Payload::OrderCreated(p) => (p.customer_id.clone(), format!("We received your order {id}"), created_body(&id.to_string(), p)),
        Payload::OrderConfirmed(p) => (
            p.customer_id.clone(),
            format!("Your order {id} is confirmed"),
            format!("Good news: every item of your order {id} is reserved for you, and the order is confirmed."),
        ),
        Payload::OrderRejected(p) => {
            (p.customer_id.clone(), format!("Your order {id} could not be accepted"), rejected_body(&id.to_string(), &p.reason))
        }
        Payload::OrderCancelled(p) => (
            p.customer_id.clone(),
            format!("Your order {id} is cancelled"),
            match p.reason {
                CancellationReason::Customer => {
                    format!("As you asked, your order {id} is cancelled. Any items reserved for it are released.")
                }
                CancellationReason::Timeout => {
                    format!("We could not confirm your order {id} in time, so it is cancelled. Any items reserved for it are released.")
                }
            },
        ),
        Payload::InventoryReserved(_) | Payload::InventoryRejected(_) | Payload::InventoryReleased(_) => return None,
    };
    Some(Rendered { customer_id, subject, body })
}

fn created_body(id: &str, p: &OrderCreated) -> String {
    let mut body = format!("Thank you for your order {id}.\n\n");
    for line in p.lines.iter() {
        body.push_str(&format!("- {} x {} at {} each\n", line.quantity, line.sku, money(&line.unit_price)));
    }
    body.push_str(&format!(
        "\nTotal: {}\n\nWe are reserving the items now and will write again as soon as the order is confirmed.",
        money(&p.total)
    ));
    body
}

/// The reason in words a customer understands, with what to do about it.
fn rejected_body(id: &str, reason: &RejectionReason) -> String {
    match reason {
        RejectionReason::OutOfStock { lines } => {
            let mut body = format!("We are sorry: we could not accept your order {id} because some items are out of stock:\n");
            for l in lines.iter() {
                let left = match l.available {
                    0 => "none left".to_owned(),
                    n => format!("only {n} left"),
                };
                body.push_str(&format!("- {}: you asked for {}, {left}\n", l.sku, l.requested));
            }
            body.push_str("\nNothing was reserved. You are welcome to order again with the quantities we have.");
            body
        }
        RejectionReason::UnknownSku { skus } => {
            let list: Vec<String> = skus.iter().map(ToString::to_string).collect();
            format!(
                "We are sorry: we could not accept your order {id} because these items are not in our catalogue: {}.\n\nNothing was reserved.",
                list.join(", ")
            )
        }
        RejectionReason::Timeout => format!(
            "We are sorry: we could not confirm your order {id} in time, so it was not accepted.\n\nAnything reserved for it is released. You are welcome to order again."
        ),
        RejectionReason::Cancelled => format!("Your order {id} was cancelled before it could be accepted.\n\nNothing was reserved."),
    }
}

/// `1999 EUR` -> `19.99 EUR`, with the currency's number of decimals
/// (ISO 4217 minor units: 0 for JPY, 3 for KWD, 2 for most).
pub fn money(m: &Money) -> String {
    let currency = m.currency();
    let code = currency.as_str();
    let decimals: u32 = match code {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF"
        | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    };
    let amount = m.amount_minor();
    if decimals == 0 {
        return format!("{amount} {code}");
    }
    let unit = 10_i64.pow(decimals);
    format!("{}.{:0width$} {code}", amount / unit, amount % unit, width = decimals as usize)
}

#[cfg(test)]
mod tests {
    use glasshouse_contracts::{
        NonEmpty, OrderCancelled, OrderConfirmed, OrderId, OrderLine, OrderRejected, Quantity, ShortLine, Sku, StockLine,
    };

    use super::*;

    fn customer() -> CustomerId {
        CustomerId::parse("cust-42").unwrap()
    }

    fn line(sku: &str, qty: u32, minor: i64) -> OrderLine {
        OrderLine { sku: Sku::parse(sku).unwrap(), quantity: Quantity::new(qty).unwrap(), unit_price: Money::parse(minor, "EUR").unwrap() }
    }

    #[test]
    fn money_uses_the_currency_decimals() {
        assert_eq!(money(&Money::parse(1999, "EUR").unwrap()), "19.99 EUR");
        assert_eq!(money(&Money::parse(5, "USD").unwrap()), "0.05 USD");
        assert_eq!(money(&Money::parse(0, "EUR").unwrap()), "0.00 EUR");
        assert_eq!(money(&Money::parse(1500, "JPY").unwrap()), "1500 JPY");
        assert_eq!(money(&Money::parse(1005, "KWD").unwrap()), "1.005 KWD");
    }

    #[test]
    fn created_lists_lines_and_total() {
        let id = OrderId::new();
        let lines = NonEmpty::new(vec![line("SKU-1", 2, 1999), line("SKU-2", 1, 500)]).unwrap();
        let e = Event::new(id, OrderCreated::new(customer(), lines).unwrap());
        let r = render(&e).unwrap();
        assert_eq!(r.customer_id, customer());
        assert_eq!(r.subject, format!("We received your order {id}"));
        assert!(r.body.contains("- 2 x SKU-1 at 19.99 EUR each\n- 1 x SKU-2 at 5.00 EUR each\n"), "{}", r.body);
        assert!(r.body.contains("Total: 44.98 EUR"), "{}", r.body);
    }

    #[test]
    fn confirmed_and_cancelled_name_the_order() {
        let id = OrderId::new();
        let r = render(&Event::new(id, OrderConfirmed { customer_id: customer() })).unwrap();
        assert_eq!(r.subject, format!("Your order {id} is confirmed"));
        assert!(r.body.contains(&id.to_string()));
        let r = render(&Event::new(id, OrderCancelled::by_customer(customer()))).unwrap();
        assert_eq!(r.subject, format!("Your order {id} is cancelled"));
        assert!(r.body.starts_with("As you asked"), "{}", r.body);
        // The saga deadline's compensation is not the customer's doing.
        let r = render(&Event::new(id, OrderCancelled::on_timeout(customer()))).unwrap();
        assert!(!r.body.contains("As you asked") && r.body.contains("in time"), "{}", r.body);
        let r = render(&Event::new(id, OrderRejected { customer_id: customer(), reason: RejectionReason::Timeout })).unwrap();
        assert!(r.body.contains("in time") && !r.body.contains("timeout"), "{}", r.body);
    }

    #[test]
    fn out_of_stock_rejection_says_what_is_short() {
        let id = OrderId::new();
        let short = NonEmpty::new(vec![
            ShortLine { sku: Sku::parse("SKU-1").unwrap(), requested: Quantity::new(3).unwrap(), available: 1 },
            ShortLine { sku: Sku::parse("SKU-2").unwrap(), requested: Quantity::new(2).unwrap(), available: 0 },
        ])
        .unwrap();
        let e = Event::new(id, OrderRejected { customer_id: customer(), reason: RejectionReason::OutOfStock { lines: short } });
        let r = render(&e).unwrap();
        assert_eq!(r.subject, format!("Your order {id} could not be accepted"));
        assert!(r.body.contains("out of stock"), "{}", r.body);
        assert!(r.body.contains("- SKU-1: you asked for 3, only 1 left\n- SKU-2: you asked for 2, none left\n"), "{}", r.body);
        // The machine code never reaches the customer.
        assert!(!r.body.contains("out_of_stock"), "{}", r.body);
    }

    #[test]
    fn unknown_sku_rejection_lists_the_skus() {
        let skus = NonEmpty::new(vec![Sku::parse("SKU-9").unwrap(), Sku::parse("SKU-10").unwrap()]).unwrap();
        let e = Event::new(OrderId::new(), OrderRejected { customer_id: customer(), reason: RejectionReason::UnknownSku { skus } });
        let r = render(&e).unwrap();
        assert!(r.body.contains("not in our catalogue: SKU-9, SKU-10."), "{}", r.body);
        assert!(!r.body.contains("unknown_sku"), "{}", r.body);
    }

    #[test]
    fn exactly_the_notified_types_render() {
        let lines = NonEmpty::one(StockLine { sku: Sku::parse("SKU-1").unwrap(), quantity: Quantity::new(1).unwrap() });
        let e = Event::new(OrderId::new(), glasshouse_contracts::InventoryReleased { lines });
        assert_eq!(render(&e), None);
        let examples = glasshouse_contracts::schema::examples();
        for t in EventType::ALL {
            assert!(examples.iter().any(|e| e.event_type() == t), "no example of {t}");
        }
        for e in examples {
            let rendered = render(&e);
            assert_eq!(rendered.is_some(), NOTIFIED.contains(&e.event_type()), "{}", e.event_type());
            if let Some(r) = rendered {
                assert!(r.subject.contains(&e.order_id().to_string()) && !r.body.is_empty(), "{r:?}");
            }
        }
    }
}
