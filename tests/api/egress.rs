//! The door out: the address policy (internal addresses in every spelling, allow-list entries
//! with ports, plain HTTP), name resolution that never stalls the database, no redirects.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lanyard::config::Settings;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use uuid::Uuid;
use wiremock::ResponseTemplate;

use crate::binary::{START_LIMIT, Sandbox};
use crate::helpers::providers::{
    GOOD_KEY, assert_failed, connection_counter, fake_openai, loopback_allowed, openai_models, openai_values,
    provider_answering, requests, test_saved, test_values,
};
use crate::helpers::{
    Backend, TestApp, TestDatabase, assert_error, distinctive_key, egress_policy, free_port, master_key_entry,
    spawn_app_with,
};
use crate::on_both_backends;

on_both_backends!(backend:
    tests_waiting_on_a_silent_name_server_leave_the_database_serving,
    a_blocked_test_names_the_host_and_never_the_address_it_resolves_to,
    an_allow_list_entry_with_a_port_allows_that_port_only,
);

on_both_backends!(settings(loopback_allowed):
    a_tests_message_is_lanyards_own_sentence_whatever_the_provider_answers,
    redirects_are_never_followed,
);

on_both_backends!(settings(public_egress):
    internal_addresses_are_refused_in_every_spelling,
    a_saved_configuration_pointing_inside_is_refused_too,
    plain_http_to_a_host_the_operator_did_not_list_is_invalid,
);

/// The real binary refuses to start on a bad name server or allow-list entry, naming the
/// variable and the entry (the database is never opened, so one backend says it all).
#[test]
fn a_bad_name_server_or_allow_list_entry_stops_start_up_naming_it() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let sandbox = Sandbox::new();
    for (variable, value, bad) in [
        (
            "LANYARD_EGRESS_NAMESERVERS",
            "127.0.0.53:53, dns.example:53",
            "dns.example:53",
        ),
        ("LANYARD_EGRESS_NAMESERVERS", "127.0.0.53", "127.0.0.53"),
        (
            "LANYARD_EGRESS_ALLOW",
            "127.0.0.1:11434, 10.0.0.0/8:11434",
            "10.0.0.0/8:11434",
        ),
        ("LANYARD_EGRESS_ALLOW", "ollama.internal:0", "ollama.internal:0"),
        ("LANYARD_WEBHOOK_ALLOW", "127.0.0.1/32, not a host!", "not a host!"),
        ("LANYARD_WEBHOOK_RETRY_SCHEDULE", "1m, soon", "soon"),
    ] {
        let envs = [
            ("DATABASE_URL", database.url_string()),
            ("LANYARD_BIND", format!("127.0.0.1:{}", free_port())),
            ("LANYARD_MASTER_KEYS", master_key_entry("egress")),
            ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
            (variable, value.to_owned()),
        ];
        let refused = sandbox.start(&envs, &["serve"], "").refused_within(START_LIMIT);
        assert!(
            refused.stderr.contains(variable) && refused.stderr.contains(&format!("`{bad}`")),
            "{variable}={value}: {}",
            refused.stderr
        );
    }
}

/// Answers the names it knows with their addresses (A or AAAA records), never answers any other
/// name, and remembers every name it was asked.
pub(crate) struct FakeNameServer {
    pub(crate) address: SocketAddr,
    asked: Arc<Mutex<HashSet<String>>>,
}

impl FakeNameServer {
    pub(crate) async fn start(answers: HashMap<String, Vec<IpAddr>>) -> FakeNameServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(HashSet::new()));
        let seen = asked.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 1500];
            while let Ok((length, from)) = socket.recv_from(&mut buffer).await {
                let query = &buffer[..length];
                let Some((name, record_type, question_end)) = read_question(query) else {
                    continue;
                };
                seen.lock().unwrap().insert(name.clone());
                if let Some(addresses) = answers.get(&name) {
                    let _ = socket
                        .send_to(&answer(query, question_end, record_type, addresses), from)
                        .await;
                }
            }
        });
        FakeNameServer { address, asked }
    }

    /// A name server that reads every query and answers none.
    async fn silent() -> FakeNameServer {
        FakeNameServer::start(HashMap::new()).await
    }

    fn was_asked_all(&self, names: &[String]) -> bool {
        let asked = self.asked.lock().unwrap();
        names.iter().all(|name| asked.contains(name))
    }
}

/// The question's name (lower case, no final dot), record type, and where the question ends.
fn read_question(query: &[u8]) -> Option<(String, u16, usize)> {
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let length = usize::from(*query.get(at)?);
        at += 1;
        if length == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + length)?).to_ascii_lowercase());
        at += length;
    }
    let record_type = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    Some((labels.join("."), record_type, at + 4))
}

/// A response carrying the addresses of the asked family (A = 1, AAAA = 28).
fn answer(query: &[u8], question_end: usize, record_type: u16, addresses: &[IpAddr]) -> Vec<u8> {
    let records: Vec<Vec<u8>> = addresses
        .iter()
        .filter_map(|address| match (address, record_type) {
            (IpAddr::V4(v4), 1) => Some(v4.octets().to_vec()),
            (IpAddr::V6(v6), 28) => Some(v6.octets().to_vec()),
            _ => None,
        })
        .collect();
    let mut reply = query[..2].to_vec(); // the query's id
    reply.extend_from_slice(&[0x81, 0x80]); // a response, recursion desired and available, no error
    reply.extend_from_slice(&1u16.to_be_bytes());
    reply.extend_from_slice(&u16::try_from(records.len()).unwrap().to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(&query[12..question_end]);
    for data in records {
        reply.extend_from_slice(&[0xc0, 0x0c]); // the name: a pointer to the question's
        reply.extend_from_slice(&record_type.to_be_bytes());
        reply.extend_from_slice(&[0, 1, 0, 0, 0, 30]); // class IN, 30 s
        reply.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        reply.extend_from_slice(&data);
    }
    reply
}

/// A name under a label of this run's own, so that runs never share a cached answer.
fn run_label() -> String {
    format!("r{}", Uuid::new_v4().simple())
}

fn one_openai_model() -> Value {
    json!({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})
}

fn openai_test(base_url: &str) -> Value {
    json!({"provider": "openai", "model": "gpt-4o", "api_key": distinctive_key("sk-egress-"), "base_url": base_url})
}

async fn tests_waiting_on_a_silent_name_server_leave_the_database_serving(backend: Backend) {
    let name_server = FakeNameServer::silent().await;
    let run = run_label();
    let hosts: Vec<String> = (0..20).map(|i| format!("hang-{i}.{run}.lanyard.test")).collect();
    let allow = hosts.join(",");
    let name_servers = name_server.address.to_string();
    let Some(app) = spawn_app_with(backend, move |settings| {
        settings.egress = egress_policy(&allow, "allowlist")
            .with_nameservers(&name_servers)
            .unwrap();
        settings.test_rate_per_minute = 100;
    })
    .await
    else {
        return;
    };
    let tester = app.user().await;
    let other = app.user().await;
    app.create_openai(&other.token, "theirs", &distinctive_key("sk-theirs-"))
        .await;

    let tests: Vec<_> = hosts
        .iter()
        .map(|host| {
            let request = app
                .client
                .post(app.url("/api/llm-configurations/test"))
                .bearer_auth(&tester.token)
                .json(&openai_test(&format!("https://{host}/v1")));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();

    // Every test has asked the name server and waits for an answer that never comes.
    for _ in 0..600 {
        if name_server.was_asked_all(&hosts) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        name_server.was_asked_all(&hosts),
        "the tests never asked the name server"
    );

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "/readyz while 20 tests wait on DNS");
    let theirs = app.configurations(&other.token).await;
    assert_eq!(theirs.len(), 1, "another user's list while 20 tests wait on DNS");

    for test in tests {
        let (status, result) = test.await.unwrap();
        assert_eq!(status, 200, "a hung lookup is a failed test, not an error: {result}");
        assert_eq!(result["status"], "failed", "{result}");
        assert_eq!(result["code"], "timeout", "{result}");
        assert!(result["latency_ms"].is_null(), "nothing was reached: {result}");
    }
}

/// Non-public addresses a name may resolve to, from every kind of range and the forms that
/// carry an IPv4 address (the first eight were let through before this issue).
const NON_PUBLIC: &[&str] = &[
    "192.88.99.1",
    "192.0.0.170",
    "fec0::1",
    "64:ff9b:1::808:808",
    "::ffff:0:808:808",
    "3fff::1",
    "5f00::1",
    "100::1",
    "2001:2::1",
    "10.20.30.40",
    "100.100.0.1",
    "198.18.0.1",
    "192.0.2.55",
    "169.254.169.254",
    "fd00:ec2::254",
    "2001:db8::1",
    "::ffff:10.20.30.40",
    "64:ff9b::a14:1e28",
    "2002:a14:1e28::1",
];

async fn a_blocked_test_names_the_host_and_never_the_address_it_resolves_to(backend: Backend) {
    let (v4_port, v4_connections) = connection_counter("127.0.0.1:0").await;
    let (v6_port, v6_connections) = connection_counter("[::1]:0").await;
    let provider = provider_answering(ResponseTemplate::new(200).set_body_json(one_openai_model())).await;
    let run = run_label();
    let reachable = format!("reachable.{run}.lanyard.test");
    let mut answers = HashMap::new();
    answers.insert(reachable.clone(), vec!["127.0.0.1".parse().unwrap()]);
    let mut cases = Vec::new();
    for (i, address) in NON_PUBLIC.iter().enumerate() {
        let address: IpAddr = address.parse().unwrap();
        let name = format!("n{i}.{run}.lanyard.test");
        // The loopback listener first: were the second address let through, the connection
        // would go to the listener, which the operator allows.
        let (loopback, port): (IpAddr, u16) = match address {
            IpAddr::V4(_) => ("127.0.0.1".parse().unwrap(), v4_port),
            IpAddr::V6(_) => ("::1".parse().unwrap(), v6_port),
        };
        answers.insert(name.clone(), vec![loopback, address]);
        cases.push((name, address, port));
    }
    let name_server = FakeNameServer::start(answers).await;
    let allow = format!("127.0.0.1/32, ::1/128, {reachable}");
    let name_servers = name_server.address.to_string();
    let Some(app) = spawn_app_with(backend, move |settings| {
        settings.egress = egress_policy(&allow, "public").with_nameservers(&name_servers).unwrap();
        settings.test_rate_per_minute = 1000;
    })
    .await
    else {
        return;
    };
    let user = app.user().await;

    // The fake name server is what the app asks: a name it resolves to an allowed address works.
    let reached = test_values(
        &app,
        &user.token,
        &openai_test(&format!("http://{reachable}:{}/v1", provider.address().port())),
    )
    .await;
    assert_eq!(reached["code"], "ok", "{reached}");

    for (name, address, port) in &cases {
        let result = test_values(&app, &user.token, &openai_test(&format!("https://{name}:{port}/v1"))).await;
        assert_eq!(result["status"], "failed", "{address}: {result}");
        assert_eq!(result["code"], "blocked_address", "{address}: {result}");
        assert!(result["latency_ms"].is_null(), "{address}: {result}");
        let message = result["message"].as_str().unwrap();
        assert!(
            message.contains(name.as_str()) && message.contains("non-public address"),
            "{address}: the message names the host and says why: {message}"
        );
        assert!(message.contains("LANYARD_EGRESS_ALLOW"), "{address}: {message}");
        let shown = result.to_string();
        for hidden in [address.to_string(), "127.0.0.1".to_owned(), "::1".to_owned()] {
            assert!(
                !shown.contains(&hidden),
                "{address}: the result shows {hidden}: {shown}"
            );
        }
    }
    assert_eq!(v4_connections.load(Ordering::SeqCst), 0, "a refused test connected");
    assert_eq!(v6_connections.load(Ordering::SeqCst), 0, "a refused test connected");
}

async fn an_allow_list_entry_with_a_port_allows_that_port_only(backend: Backend) {
    let provider = provider_answering(ResponseTemplate::new(200).set_body_json(one_openai_model())).await;
    let port = provider.address().port();
    let (other_port, connections) = connection_counter("127.0.0.1:0").await;
    // `localhost` never reaches a name server; a silent one makes sure nothing else is asked.
    let name_server = FakeNameServer::silent().await;
    let name_servers = name_server.address.to_string();
    let allow = format!("127.0.0.1:{port}, localhost:{port}");
    let Some(app) = spawn_app_with(backend, move |settings| {
        settings.egress = egress_policy(&allow, "allowlist")
            .with_nameservers(&name_servers)
            .unwrap();
        settings.test_rate_per_minute = 1000;
    })
    .await
    else {
        return;
    };
    let user = app.user().await;

    for host in ["127.0.0.1", "localhost"] {
        let listed = test_values(&app, &user.token, &openai_test(&format!("http://{host}:{port}/v1"))).await;
        assert_eq!(listed["code"], "ok", "{host}:{port} is listed: {listed}");
        let saved = app
            .post_json(
                "/api/llm-configurations",
                &user.token,
                &json!({"name": format!("listed {host}"), "provider": "openai", "model": "gpt-4o",
                        "api_key": distinctive_key("sk-listed-"), "base_url": format!("http://{host}:{port}/v1")}),
            )
            .await;
        assert_eq!(saved.status(), 201, "{host}:{port} may be saved with plain http");

        // Another port of the same host: plain http is refused outright ...
        let plain = openai_test(&format!("http://{host}:{other_port}/v1"));
        let refused = assert_error(
            app.post_json("/api/llm-configurations/test", &user.token, &plain).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(
            refused["fields"]["base_url"].is_array(),
            "{host}:{other_port}: {refused}"
        );

        // ... and https to it is refused before any connection.
        let result = test_values(
            &app,
            &user.token,
            &openai_test(&format!("https://{host}:{other_port}/v1")),
        )
        .await;
        assert_eq!(result["code"], "blocked_address", "{host}:{other_port}: {result}");
        assert!(
            result["message"].as_str().unwrap().contains("LANYARD_EGRESS_ALLOW"),
            "{result}"
        );
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "another port was reached");
}

const MARKER: &str = "MARKER-PHRASE-FROM-THE-PROVIDER";

async fn a_tests_message_is_lanyards_own_sentence_whatever_the_provider_answers(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let csrf = browser.csrf().await;
    let key = distinctive_key("sk-echoed-");
    // 200 with a body that is no model list, and every kind of failing status.
    for status in [200, 400, 401, 403, 404, 418, 429, 500, 503] {
        let echo = format!("{MARKER}: Incorrect API key provided: {key}");
        let openai = provider_answering(
            ResponseTemplate::new(status).set_body_json(json!({"error": {"message": echo, "key": key}})),
        )
        .await;
        let ollama =
            provider_answering(ResponseTemplate::new(status).set_body_string(format!("{echo} (at /api/tags)"))).await;
        let base_url = format!("{}/v1", openai.uri());

        let from_openai = test_values(
            &app,
            &user.token,
            &json!({"provider": "openai", "model": "gpt-4o", "api_key": key, "base_url": base_url}),
        )
        .await;
        let from_ollama = test_values(
            &app,
            &user.token,
            &json!({"provider": "ollama", "model": "llama3", "base_url": ollama.uri()}),
        )
        .await;
        assert_eq!(from_openai["status"], "failed", "HTTP {status}: {from_openai}");
        assert_eq!(
            from_openai["code"], from_ollama["code"],
            "HTTP {status}: {from_openai} / {from_ollama}"
        );
        assert_eq!(
            from_openai["message"], from_ollama["message"],
            "HTTP {status}: one sentence per code, whatever the provider and its words"
        );

        let saved = app
            .create_configuration(
                &user.token,
                json!({"name": format!("echo {status}"), "provider": "openai", "model": "gpt-4o",
                       "api_key": key, "base_url": base_url}),
            )
            .await;
        let id = saved.id;
        let row = browser
            .post_htmx(&format!("/llm-configurations/{id}/test"), &[("csrf_token", &csrf)])
            .await;
        assert_eq!(row.status(), 200, "HTTP {status}");
        let row = row.text().await.unwrap();
        let stored = app
            .get(&format!("/api/llm-configurations/{id}"), &user.token)
            .await
            .text()
            .await
            .unwrap();
        assert!(stored.contains("\"test_status\":\"failed\""), "HTTP {status}: {stored}");
        let form = browser
            .post_htmx(
                "/llm-configurations/test",
                &[
                    ("name", "form"),
                    ("provider", "openai"),
                    ("model", "gpt-4o"),
                    ("api_key", &key),
                    ("base_url", &base_url),
                    ("is_active", "true"),
                    ("csrf_token", &csrf),
                ],
            )
            .await
            .text()
            .await
            .unwrap();
        for (place, text) in [
            ("the API result", from_openai.to_string()),
            ("the API result", from_ollama.to_string()),
            ("the row", row),
            ("the stored result", stored),
            ("the form's result", form),
        ] {
            assert!(
                !text.contains(MARKER),
                "HTTP {status}: {place} quotes the provider: {text}"
            );
            assert!(!text.contains(&key), "HTTP {status}: {place} shows the key: {text}");
        }
    }
    let page = browser.page("/llm-configurations").await;
    assert!(!page.contains(MARKER) && !page.contains(&key), "{page}");
}

/// The default policy of a deployment: public addresses only, nothing listed.
fn public_egress(settings: &mut Settings) {
    settings.egress = egress_policy("", "public");
    settings.test_rate_per_minute = 1000;
}

async fn redirects_are_never_followed(app: TestApp) {
    let user = app.user().await;
    let elsewhere = provider_answering(ResponseTemplate::new(200).set_body_json(openai_models())).await;
    for status in [301, 302, 303, 307, 308] {
        let redirecting = provider_answering(
            ResponseTemplate::new(status).insert_header("location", format!("{}/v1/models", elsewhere.uri()).as_str()),
        )
        .await;
        let result = test_values(&app, &user.token, &openai_values(&redirecting, GOOD_KEY, "gpt-4o")).await;
        assert_eq!(result["status"], "failed", "HTTP {status}: {result}");
        assert_ne!(result["code"], "ok", "HTTP {status}: {result}");
        assert_eq!(requests(&redirecting).await.len(), 1);
    }
    assert!(requests(&elsewhere).await.is_empty(), "a redirect was followed");
}

/// Internal hosts in every spelling; each would reach the loopback listener on `port` if a
/// connection were made to the loopback ones.
fn internal_base_urls(port: u16) -> Vec<String> {
    [
        "127.0.0.1",
        "localhost",
        "127.1",
        "2130706433",
        "0x7f000001",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "10.0.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "[fd00:ec2::254]",
        "0.0.0.0",
    ]
    .iter()
    .map(|host| format!("https://{host}:{port}"))
    .collect()
}

/// The test of `base_url` is refused: a `blocked_address` result or a 422, naming the variable
/// that would allow it.
async fn assert_refused(app: &TestApp, token: &str, base_url: &str) {
    let body = json!({"provider": "openai", "model": "gpt-4o", "api_key": GOOD_KEY, "base_url": base_url});
    let response = app.post_json("/api/llm-configurations/test", token, &body).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    match status {
        200 => {
            assert_failed(&body, "blocked_address");
            assert!(body["latency_ms"].is_null(), "{base_url}: {body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.contains("LANYARD_EGRESS_ALLOW"), "{base_url}: {message}");
        }
        422 => {
            assert_eq!(body["error"], "validation_failed", "{base_url}: {body}");
            assert!(body.to_string().contains("LANYARD_EGRESS_ALLOW"), "{base_url}: {body}");
        }
        other => panic!("{base_url}: HTTP {other}: {body}"),
    }
}

async fn internal_addresses_are_refused_in_every_spelling(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let wiremock_port = server.address().port();
    let (counted_port, connections) = connection_counter("127.0.0.1:0").await;
    for port in [wiremock_port, counted_port] {
        for base_url in internal_base_urls(port) {
            assert_refused(&app, &user.token, &base_url).await;
        }
    }
    assert!(
        requests(&server).await.is_empty(),
        "a refused test reached the provider"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a refused test connected");
}

async fn a_saved_configuration_pointing_inside_is_refused_too(app: TestApp) {
    let user = app.user().await;
    let (port, connections) = connection_counter("127.0.0.1:0").await;
    for (name, base_url) in [
        ("metadata", "https://169.254.169.254".to_owned()),
        ("mapped", format!("https://[::ffff:127.0.0.1]:{port}")),
        ("local", format!("https://localhost:{port}")),
    ] {
        let saved = app
            .create_configuration(
                &user.token,
                json!({"name": name, "provider": "openai", "model": "gpt-4o", "api_key": GOOD_KEY, "base_url": base_url}),
            )
            .await;
        let result = test_saved(&app, &user.token, &saved).await;
        assert_failed(&result, "blocked_address");
        assert!(
            result["message"].as_str().unwrap().contains("LANYARD_EGRESS_ALLOW"),
            "{result}"
        );
        let fetched = app.refetch(&user.token, &saved).await;
        assert_eq!(fetched.test_status, "failed");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a refused test connected");
}

async fn plain_http_to_a_host_the_operator_did_not_list_is_invalid(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let port = server.address().port();
    for base_url in [
        format!("http://127.0.0.1:{port}/v1"),
        format!("http://localhost:{port}/v1"),
        "http://example.com/v1".to_owned(),
    ] {
        let body = json!({"provider": "openai", "model": "gpt-4o", "api_key": GOOD_KEY, "base_url": base_url});
        let refused = assert_error(
            app.post_json("/api/llm-configurations/test", &user.token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(refused["fields"]["base_url"].is_array(), "{base_url}: {refused}");
        assert!(
            refused.to_string().contains("LANYARD_EGRESS_ALLOW"),
            "{base_url}: {refused}"
        );
        let mut configuration = body.clone();
        configuration["name"] = json!("plain");
        assert_error(
            app.post_json("/api/llm-configurations", &user.token, &configuration)
                .await,
            422,
            "validation_failed",
        )
        .await;
    }
    let ollama = json!({"provider": "ollama", "model": "llama3", "base_url": format!("http://127.0.0.1:{port}")});
    assert_error(
        app.post_json("/api/llm-configurations/test", &user.token, &ollama)
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(requests(&server).await.is_empty());
}
