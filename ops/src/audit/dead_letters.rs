//! Dead letters waiting for a redrive. Each is a saga step that did not
//! happen; they are warnings (someone has to look, the data is not wrong yet)
//! unless `--strict` makes them violations. Messages already redriven with
//! `glasshouse-dlq redrive` do not count.

use super::world::{DeadLetters, Rules, World};
use super::{Check, CheckOutcome, Kind, Violation};

pub fn check(world: &World, rules: &Rules) -> CheckOutcome {
    let counts = match &world.dead_letters {
        DeadLetters::Counted(c) => c,
        DeadLetters::NotChecked(why) => {
            let mut out = CheckOutcome::new(Check::DeadLetters, "no topics");
            out.skipped = Some(why.clone());
            return out;
        }
    };
    let summary: Vec<String> = counts
        .iter()
        .map(|c| if c.exists { format!("{} {} pending/{} kept", c.topic, c.pending, c.kept) } else { format!("{} absent", c.topic) })
        .collect();
    let mut out = CheckOutcome::new(Check::DeadLetters, summary.join(", "));
    for c in counts.iter().filter(|c| c.pending > 0) {
        let v = Violation::new(
            Kind::DeadLettersPending,
            &c.topic,
            format!("{} dead letters not redriven ({} kept); see `glasshouse-dlq list`", c.pending, c.kept),
        );
        if rules.strict { out.violations.push(v) } else { out.warnings.push(v) }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::world::DeadLetterCount;
    use crate::audit::world::fixtures::RULES;

    fn world(pending: i64) -> World {
        let mut w = World::empty();
        w.dead_letters = DeadLetters::Counted(vec![
            DeadLetterCount { topic: "orders.v1.dlq".into(), exists: true, kept: 5, pending },
            DeadLetterCount { topic: "inventory.v1.dlq".into(), exists: false, kept: 0, pending: 0 },
        ]);
        w
    }

    #[test]
    fn redriven_or_absent_dead_letters_pass() {
        let out = check(&world(0), &RULES);
        assert!(out.violations.is_empty() && out.warnings.is_empty());
        assert_eq!(out.examined, "orders.v1.dlq 0 pending/5 kept, inventory.v1.dlq absent");
    }

    #[test]
    fn pending_dead_letters_warn_and_fail_when_strict() {
        let out = check(&world(2), &RULES);
        assert!(out.violations.is_empty());
        assert_eq!(
            out.warnings.iter().map(|w| (w.kind, w.subject.as_str())).collect::<Vec<_>>(),
            [(Kind::DeadLettersPending, "orders.v1.dlq")]
        );
        assert_eq!(out.status(), "WARN");
        let strict = check(&world(2), &Rules { strict: true, ..RULES });
        assert_eq!(strict.violations.len(), 1);
        assert!(strict.warnings.is_empty());
    }

    #[test]
    fn not_looking_is_a_skip() {
        let mut w = world(0);
        w.dead_letters = DeadLetters::NotChecked("--no-dlq".into());
        assert_eq!(check(&w, &RULES).status(), "SKIP");
    }
}
