//! Scheduled checks across instances (issue 15, Must show 1): three `lanyard serve` processes
//! on one PostgreSQL database (and one on SQLite) with `LANYARD_CHECK_INTERVAL=5s` and 20
//! connections pointing at a local fake provider that counts requests per key. Over 30 s every
//! connection is checked 5 to 7 times in all (not per instance), never twice within 4 s.
//!
//! Its own test binary: it runs for about 35 s per backend and measures time, so it does not
//! share the machine with the rest of the suite's tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod instances;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instances::{Instance, Site, TestDatabase};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
const CONNECTIONS: usize = 20;
const WATCHED: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_secs(5);

/// When each key was presented to the fake provider.
type Seen = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// An OpenAI-compatible model list on 127.0.0.1 that notes every request's bearer key.
async fn fake_provider() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let noted = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let noted = noted.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0_u8; 4096];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let key = text
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("authorization")
                            .then(|| value.trim().trim_start_matches("Bearer ").to_owned())
                    })
                    .unwrap_or_default();
                noted.lock().unwrap().entry(key).or_default().push(Instant::now());
                let body = json!({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}).to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, seen)
}

/// `instances` servers on one database check each of 20 connections once per interval in all.
async fn every_connection_is_checked_once_per_interval(postgres: bool, instances: usize) {
    let Some(database) = TestDatabase::create(postgres, "lanyard_checks") else {
        return;
    };
    let (provider_port, seen) = fake_provider().await;
    let site = Site::new(
        database,
        "checks1",
        vec![
            ("LANYARD_EGRESS_ALLOW", "127.0.0.1/32".into()),
            ("LANYARD_CHECK_INTERVAL", "5s".into()),
        ],
    );
    let token = site.token("checks@example.com");
    let servers: Vec<Instance> = (0..instances)
        .map(|index| site.serve(&format!("serve-{index}")))
        .collect();
    let client = reqwest::Client::new();
    for server in &servers {
        server.until_serving(&client).await;
    }

    let keys: Vec<String> = (0..CONNECTIONS)
        .map(|index| format!("sk-scheduled-{index:02}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    for (index, key) in keys.iter().enumerate() {
        // Spread over the instances, as a load balancer would.
        let server = &servers[index % servers.len()];
        let body = json!({
            "name": format!("checked {index}"),
            "provider": "openai",
            "api_key": key,
            "base_url": format!("http://127.0.0.1:{provider_port}/v1"),
        });
        let response = client
            .post(format!("http://127.0.0.1:{}/api/connections", server.port))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{answer}");
    }
    let watched_from = Instant::now();
    tokio::time::sleep(WATCHED).await;
    let watched_until = Instant::now();
    drop(servers);

    let seen = seen.lock().unwrap().clone();
    let mut report = Vec::new();
    for key in &keys {
        let times: Vec<Instant> = seen
            .get(key)
            .map(|times| {
                times
                    .iter()
                    .copied()
                    .filter(|at| *at >= watched_from && *at <= watched_until)
                    .collect()
            })
            .unwrap_or_default();
        let closest = times
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .min()
            .unwrap_or(Duration::MAX);
        report.push((times.len(), closest));
    }
    eprintln!("checks per connection in 30 s, and the closest two: {report:?}");
    for (index, (count, closest)) in report.iter().enumerate() {
        assert!(
            (5..=7).contains(count),
            "connection {index} was checked {count} times in 30 s (want 5 to 7); all: {report:?}"
        );
        assert!(
            *closest >= INTERVAL * 4 / 5,
            "connection {index} was checked twice within {closest:?} (want at least 4 s); all: {report:?}"
        );
    }
    assert!(
        !seen.keys().any(|key| !keys.contains(key)),
        "the provider saw a key it was not given: {:?}",
        seen.keys().collect::<Vec<_>>()
    );
}

/// The two runs measure time: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgresql_check_each_connection_once_per_interval() {
    let _turn = ONE_AT_A_TIME.lock().await;
    every_connection_is_checked_once_per_interval(true, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_on_sqlite_checks_each_connection_once_per_interval() {
    let _turn = ONE_AT_A_TIME.lock().await;
    every_connection_is_checked_once_per_interval(false, 1).await;
}
