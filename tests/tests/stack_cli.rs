//! The stack manager's command line: bad input gets a message naming it, and
//! a missing backend is reported by name with how to start it.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Command;

use glasshouse_tests::stack::{self, Component};

fn stack_cmd(args: &[&str]) -> std::process::Output {
    Command::new("bash").arg(stack::repo_root().join("deploy/local/stack")).args(args).output().expect("bash runs the stack script")
}

#[test]
fn unknown_component_is_named_and_nothing_starts() {
    let out = stack_cmd(&["up", "nosuchthing"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown component 'nosuchthing'"), "stderr: {err}");
    assert!(err.contains("postgres") && err.contains("opensearch"), "lists the known ones: {err}");
}

#[test]
fn unknown_command_prints_usage_and_exits_2() {
    let out = stack_cmd(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deploy/local/stack up"));
}

#[test]
fn status_lists_every_component() {
    let out = stack_cmd(&["status"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["postgres", "mariadb", "ferretdb", "victorialogs", "jaeger", "alertmanager", "prometheus", "kafka", "opensearch", "zipkin"]
    {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name} missing from status:\n{text}");
    }
}

#[tokio::test]
async fn missing_backend_fails_with_name_and_remedy() {
    // Port 1 on loopback: nothing of ours ever listens there.
    let ghost = Component { name: "ghost", port_var: "GH_GHOST_PORT_UNSET", default_port: 1 };
    let err = stack::require(ghost).await.expect_err("nothing listens on port 1").to_string();
    assert!(err.contains("ghost is not reachable at 127.0.0.1:1"), "{err}");
    assert!(err.contains("deploy/local/stack up ghost"), "{err}");
}
