//! An OCI image of the order service, assembled without a Docker daemon, then
//! inspected: the image the Dockerfile describes (deploy/docker/Dockerfile),
//! built here with crane (`deploy/local/stack install crane`; `make test`
//! installs it through deploy/local/test-tools.sh).
//!
//! The layer holds the service's binary (the debug build `cargo test
//! --workspace` makes), exactly the shared libraries `ldd` says it loads (and
//! the loader), the service's config directory and an /etc/passwd with the
//! non-root user 65532: a distroless-like runtime without a shell. crane
//! appends it to an empty OCI base and sets user, entrypoint and environment,
//! pushing to `crane registry serve` on 127.0.0.1 (in memory), then writes the
//! image as an OCI layout. The test reads back the config (`crane config`) and
//! the file list (`crane export`), and, as root, runs the exported root
//! filesystem's binary under chroot as uid 65532 to prove the libraries in the
//! image are enough.
//!
//! No crane or no binary: a loud SKIPPED message, unless `CI` is set.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use glasshouse_tests::services::{bin_dir, free_port};
use glasshouse_tests::stack::{home, repo_root};

const ENTRYPOINT: &str = "/usr/local/bin/glasshouse-order";
const CONFIG_DIR: &str = "/etc/glasshouse/config";
const USER: &str = "65532:65532";

fn skip_or_fail(what: &str) {
    assert!(std::env::var_os("CI").is_none(), "{what} under CI");
    eprintln!("\n!!!!!!!! SKIPPED: image test: {what} !!!!!!!!\n");
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// The in-memory registry, stopped when dropped.
struct Registry(Child);
impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The files `ldd` says the binary loads: (path as the loader asks for it).
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = run(Command::new("ldd").arg(binary));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)";
        // linux-vdso has no file.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next().unwrap_or(""),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        assert!(!line.contains("not found"), "ldd: {line}");
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")), "ldd found no libc: {text}");
    libs
}

/// Copies `from` (following symlinks) to `root` + `at`.
fn put(root: &Path, at: &Path, from: &Path) {
    let dest = root.join(at.strip_prefix("/").unwrap());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(from, &dest).unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), dest.display()));
}

#[test]
fn the_order_service_image_is_assembled_without_a_daemon_and_has_no_shell() {
    let Some(crane) = home().ok().map(|h| h.join("bin/crane")).filter(|p| p.is_file()) else {
        return skip_or_fail("crane is not built; `deploy/local/stack install crane` (make test does)");
    };
    let binary = std::env::var_os("GH_ORDER_BINARY").map(PathBuf::from).unwrap_or_else(|| bin_dir().unwrap().join("glasshouse-order"));
    if !binary.is_file() {
        return skip_or_fail(&format!("{} is missing; `cargo build -p glasshouse-order` (cargo test --workspace does)", binary.display()));
    }
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let root = work.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();

    // --- the layer: binary, its libraries, config, passwd/group, an empty /tmp
    put(&root, Path::new(ENTRYPOINT), &binary);
    let libs = shared_libraries(&binary);
    for lib in &libs {
        put(&root, lib, lib);
    }
    let config = repo_root().join("services/order/config/base.yaml");
    put(&root, &Path::new(CONFIG_DIR).join("base.yaml"), &config);
    std::fs::write(root.join("etc/glasshouse/config/kubernetes.yaml"), "# the image's environment layer: empty\n").unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let layer = work.join("layer.tar");
    // Reproducible: sorted, owned by root, mtime 0.
    run(Command::new("tar")
        .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&layer)
        .arg("."));

    // --- crane: an in-memory registry on loopback, append, mutate, OCI layout
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _registry = Registry(
        Command::new(&crane).args(["registry", "serve", "--address", &addr]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "crane registry serve did not listen on {addr} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let image = format!("{addr}/glasshouse-order:test");
    let started = Instant::now();
    run(Command::new(&crane).args(["append", "--oci-empty-base", "-t", &image, "-f"]).arg(&layer));
    run(Command::new(&crane).args([
        "mutate",
        &image,
        "-t",
        &image,
        "--set-platform",
        "linux/amd64",
        "--user",
        USER,
        "--entrypoint",
        ENTRYPOINT,
        "-e",
        &format!("APP_CONFIG_DIR={CONFIG_DIR}"),
        "-e",
        "APP_ENVIRONMENT=kubernetes",
        // The allocator's settings, as deploy/docker/Dockerfile sets them.
        "-e",
        "MIMALLOC_ARENA_EAGER_COMMIT=0",
        "-e",
        "MIMALLOC_PURGE_DELAY=0",
        "-w",
        "/tmp",
    ]));
    let layout = work.join("oci");
    run(Command::new(&crane).args(["pull", "--format=oci", &image]).arg(&layout));
    eprintln!("image assembled in {:.1}s ({} shared libraries from ldd)", started.elapsed().as_secs_f64(), libs.len());
    assert!(layout.join("oci-layout").is_file() && layout.join("index.json").is_file(), "an OCI image layout");

    // --- the config: non-root user, the binary as entrypoint, no shell anywhere in it
    let manifest: serde_json::Value = serde_json::from_slice(&run(Command::new(&crane).args(["manifest", &image])).stdout).unwrap();
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json", "{manifest}");
    let cfg: serde_json::Value = serde_json::from_slice(&run(Command::new(&crane).args(["config", &image])).stdout).unwrap();
    eprintln!("config: {cfg}");
    assert_eq!(cfg["os"], "linux");
    assert_eq!(cfg["architecture"], "amd64");
    let c = &cfg["config"];
    assert_eq!(c["User"], USER);
    let uid: u32 = c["User"].as_str().unwrap().split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0, "non-root");
    assert_eq!(c["Entrypoint"], serde_json::json!([ENTRYPOINT]), "exec form, the binary itself");
    assert!(c["Cmd"].is_null(), "no Cmd (a shell form would need /bin/sh): {c}");
    let words = cfg.to_string();
    assert!(!words.contains("/bin/sh") && !words.contains("bash"), "no shell in the config: {words}");

    // --- the files: exactly ours, no shell, no package manager
    let export = run(Command::new(&crane).args(["export", &image, "-"]));
    let list = work.join("export.tar");
    std::fs::write(&list, &export.stdout).unwrap();
    let names = String::from_utf8(run(Command::new("tar").arg("-tf").arg(&list)).stdout).unwrap();
    let files: BTreeSet<String> =
        names.lines().map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string()).filter(|l| !l.is_empty()).collect();
    eprintln!("{} entries: {files:?}", files.len());
    for shell in ["bin/sh", "bin/bash", "bin/dash", "usr/bin/sh", "bin/busybox", "usr/bin/apt", "usr/bin/dpkg"] {
        assert!(!files.contains(shell), "{shell} is in the image");
    }
    assert!(!files.iter().any(|f| f.ends_with("/sh") || f.ends_with("bash")), "a shell in the image: {files:?}");
    for want in [&ENTRYPOINT[1..], "etc/passwd", "etc/glasshouse/config/base.yaml", "etc/glasshouse/config/kubernetes.yaml"] {
        assert!(files.contains(want), "{want} missing: {files:?}");
    }
    for lib in &libs {
        let inside = lib.to_string_lossy().trim_start_matches('/').to_string();
        assert!(files.contains(&inside), "{inside} (from ldd) missing: {files:?}");
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("nonroot:x:65532:65532:")), "{passwd}");

    // --- it runs from the image's files alone, as uid 65532 (chroot needs root)
    let is_root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    if is_root {
        let rootfs = work.join("exported");
        std::fs::create_dir_all(&rootfs).unwrap();
        run(Command::new("tar").arg("-xf").arg(&list).arg("-C").arg(&rootfs));
        // A bad setting makes the service stop at once, after its binary loaded,
        // its libraries resolved and its config files were read.
        let out = Command::new("timeout")
            .arg("30")
            .arg("chroot")
            .arg(format!("--userspec={USER}"))
            .arg(&rootfs)
            .arg(ENTRYPOINT)
            .env_clear()
            // For timeout and chroot themselves; the image has nothing on it.
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("APP_CONFIG_DIR", CONFIG_DIR)
            .env("APP_ENVIRONMENT", "kubernetes")
            .env("APP_HTTP__PORT", "not-a-port")
            .output()
            .unwrap();
        let stderr = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!stderr.contains("error while loading shared libraries"), "{stderr}");
        assert_eq!(out.status.code(), Some(64), "the service's config error exit code; stderr:\n{stderr}");
        assert!(stderr.contains("invalid configuration") && stderr.contains("not-a-port"), "{stderr}");
    } else {
        eprintln!("not root: the chroot run of the exported image is skipped");
    }
    let _ = std::fs::remove_dir_all(&work);
}
