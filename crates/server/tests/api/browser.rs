//! `/docs` in a real browser: headless Chromium (Debian's `chromium` package), cut off from
//! every network but loopback, renders the whole OpenAPI document from what the server
//! itself serves. Skipped when Chromium is not installed, which is an error under
//! `CLINICFLOW_REQUIRE_SERVICES=1` (CI, where `.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clinicflow_store::testing::TestBackend;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

/// How long one Chromium run may take before the test gives up on it.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(120);

/// How much page time Chromium lets pass (loads, scripts, timers) before it dumps or shoots:
/// virtual time, which stands still while the page waits for the network, so a slow machine
/// only makes the run longer, never the page emptier.
const VIRTUAL_TIME_BUDGET_MS: &str = "30000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_render_in_headless_chromium_without_internet() {
    let Some(chromium) = chromium() else {
        return;
    };
    let Some(app) = TestApp::spawn(TestBackend::Sqlite).await else {
        return;
    };
    let document: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("the document")
        .json()
        .await
        .expect("JSON");
    let operation_ids: Vec<String> = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("a path item").values())
        .map(|op| {
            op["operationId"]
                .as_str()
                .expect("an operation id")
                .to_owned()
        })
        .collect();
    assert!(operation_ids.len() > 50, "the whole API is documented");
    let page = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .expect("/docs");
    assert_eq!(page.status(), StatusCode::OK);

    let profile = tempfile::tempdir().expect("a profile directory");
    let url = app.url("/docs");
    let dom = {
        let (chromium, profile, url) = (chromium.clone(), profile.path().join("dom"), url.clone());
        tokio::task::spawn_blocking(move || {
            run_chromium(&chromium, &profile, &["--dump-dom", &url])
        })
        .await
        .expect("chromium ran")
    };
    let html = String::from_utf8_lossy(&dom.stdout);
    let console = String::from_utf8_lossy(&dom.stderr);
    // Redoc replaced the page's fallback text with the reference: a section per operation.
    assert!(
        !html.contains("Loading the API reference"),
        "Redoc did not render:\n{html}\n{console}"
    );
    let sections = sections(&html);
    let missing: Vec<&String> = operation_ids
        .iter()
        .filter(|id| {
            let own = format!("operation/{id}");
            !sections.iter().any(|s| s.ends_with(&own))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "operations Redoc did not render: {missing:?}\n{console}"
    );
    // The page's policy blocked nothing it needs; the one thing it blocks is Redoc's logo
    // from a CDN (its alt text shows).
    let violations: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("Content Security Policy"))
        .filter(|l| !(l.contains("img-src") && l.contains("cdn.redoc.ly")))
        .collect();
    assert!(
        violations.is_empty(),
        "blocked by the policy: {violations:?}"
    );

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs-in-chromium.png");
    let shot = {
        let (chromium, profile, url) = (chromium, profile.path().join("shot"), url);
        let target = format!("--screenshot={}", screenshot.display());
        tokio::task::spawn_blocking(move || {
            run_chromium(
                &chromium,
                &profile,
                &["--window-size=1280,900", "--hide-scrollbars", &target, &url],
            )
        })
        .await
        .expect("chromium ran")
    };
    let png = std::fs::read(&screenshot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}):\n{}",
            screenshot.display(),
            String::from_utf8_lossy(&shot.stderr)
        )
    });
    let (distinct, dominant_share) = colours(&png);
    eprintln!(
        "screenshot {}: {distinct} colours, the commonest on {:.0} % of the page",
        screenshot.display(),
        dominant_share * 100.0
    );
    assert!(distinct > 2, "a blank page: {}", screenshot.display());
    // A white page with a line of text is 98 % one colour; Redoc's three columns are not.
    assert!(
        dominant_share < 0.9,
        "the page is nearly one colour ({:.0} %): {}",
        dominant_share * 100.0,
        screenshot.display()
    );
}

/// The ids of the sections Redoc rendered: `tag/{tag}/operation/{operation id}` for each
/// operation.
fn sections(html: &str) -> Vec<&str> {
    html.split("data-section-id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

/// The Chromium binary; `None` (the test skips) when it is not installed, which is an error
/// under `CLINICFLOW_REQUIRE_SERVICES=1`.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CLINICFLOW_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "chromium is required to test /docs in a browser (Debian: apt-get install chromium)"
        );
        clinicflow_store::testing::record_skip("no chromium (Debian: apt-get install chromium)");
    }
    found
}

/// Runs headless Chromium on a fresh profile with `args`, reaching nothing but loopback: every
/// host name but 127.0.0.1 fails to resolve, and every address but loopback goes to a proxy
/// that is not there.
fn run_chromium(chromium: &Path, profile: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            // Chromium's sandbox cannot start as root, which CI is.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // The pipes are drained on their own threads, so a full pipe cannot stall Chromium.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + CHROMIUM_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("chromium runs") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().expect("chromium stopped");
            child.wait().expect("chromium reaped");
            panic!("chromium did not finish within {CHROMIUM_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = Output {
        status,
        stdout: out.join().expect("stdout read").expect("stdout"),
        stderr: err.join().expect("stderr read").expect("stderr"),
    };
    assert!(
        output.status.success(),
        "chromium failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The number of distinct colours of a PNG (up to a few hundred, then it stops counting)
/// and the share of pixels that have the commonest.
fn colours(png_bytes: &[u8]) -> (usize, f64) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    let bytes_per_pixel = frame.color_type.samples() * usize::from(frame.bit_depth as u8) / 8;
    assert!(bytes_per_pixel > 0, "a colour type with whole-byte pixels");
    let mut counts = std::collections::HashMap::<&[u8], usize>::new();
    for pixel in pixels[..frame.buffer_size()].chunks_exact(bytes_per_pixel) {
        *counts.entry(pixel).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let commonest = counts.values().copied().max().unwrap_or(0);
    (counts.len(), commonest as f64 / total.max(1) as f64)
}
