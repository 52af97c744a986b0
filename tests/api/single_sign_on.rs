//! Single sign-on by OpenID Connect (sign-in.md), driven over HTTP against a fake identity
//! provider on loopback that this file controls (wiremock): its discovery document, its keys
//! (an EC P-256 key made per test) and a token endpoint answering with the ID token a test
//! crafts. Every refusal is a 400 page that says why, and leaves no session. The real provider
//! (`oidc-provider`) drives the browser suite (`tests/browser/single_sign_on.rs`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lanyard::config::{Settings, SingleSignOnSettings};
use lanyard::db::{memberships, organisations, users};
use lanyard::domain::OrganisationName;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Browser, TEST_PASSWORD, TestApp, free_port, location, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(backend:
    a_first_sign_in_makes_an_account_and_a_second_lands_in_it,
    a_wrong_state_is_refused_without_a_session,
    a_replayed_callback_is_refused,
    a_callback_without_the_cookie_is_refused,
    an_id_token_with_a_wrong_nonce_is_refused,
    an_id_token_for_another_audience_is_refused,
    an_expired_id_token_is_refused,
    an_unsigned_id_token_is_refused,
    an_id_token_signed_by_an_unknown_key_is_refused,
    a_rotated_key_is_fetched_again_and_accepted,
    an_unverified_email_makes_no_account,
    a_verified_email_of_a_password_account_does_not_sign_into_it,
    without_account_creation_an_unknown_person_is_refused,
    single_sign_on_never_makes_the_first_user,
    a_disabled_user_is_refused_at_the_callback,
    a_password_account_links_from_settings_and_unlinks,
    groups_bring_managed_organisations_in_line_at_every_sign_in,
    an_account_without_a_password_re_authenticates_by_single_sign_on_for_a_resolve_token,
    password_login_off_hides_the_form_and_refuses_passwords,
    an_unreachable_provider_leaves_password_sign_in_working_until_it_comes_up,
);

const CLIENT_ID: &str = "lanyard";
const CLIENT_SECRET: &str = "lanyard-test-secret";

/// A fake identity provider on loopback.
struct FakeProvider {
    server: MockServer,
    key: SigningKey,
    kid: String,
}

fn public_jwk(key: &SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": b64(point.x().unwrap()),
        "y": b64(point.y().unwrap()),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS of `claims` with `header`, signed by `key` (ES256), or unsigned without one.
fn jws(header: &Value, claims: &Value, key: Option<&SigningKey>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match key {
        Some(key) => {
            let signature: Signature = key.sign(input.as_bytes());
            b64(&signature.to_bytes())
        }
        None => String::new(),
    };
    format!("{input}.{signature}")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl FakeProvider {
    async fn start() -> FakeProvider {
        FakeProvider::on(MockServer::start().await).await
    }

    async fn on(server: MockServer) -> FakeProvider {
        let provider = FakeProvider {
            server,
            key: SigningKey::random(&mut rand::rngs::OsRng),
            kid: "key-1".to_owned(),
        };
        let issuer = provider.issuer();
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/auth"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "code_challenge_methods_supported": ["S256"],
            })))
            .mount(&provider.server)
            .await;
        provider
            .serve_keys(&[public_jwk(&provider.key, &provider.kid)], 5)
            .await;
        provider
    }

    fn issuer(&self) -> String {
        self.server.uri()
    }

    async fn serve_keys(&self, keys: &[Value], priority: u8) {
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "keys": keys })))
            .with_priority(priority)
            .mount(&self.server)
            .await;
    }

    /// The standard claims of a good ID token for this sign-in.
    fn claims(&self, nonce: &str, subject: &str, email: &str) -> Value {
        json!({
            "iss": self.issuer(),
            "aud": CLIENT_ID,
            "sub": subject,
            "exp": now() + 300,
            "iat": now(),
            "nonce": nonce,
            "email": email,
            "email_verified": true,
            "groups": [],
        })
    }

    fn sign(&self, claims: &Value) -> String {
        jws(
            &json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}),
            claims,
            Some(&self.key),
        )
    }

    /// The token endpoint answers the next exchange with this ID token.
    async fn answer_with(&self, id_token: String) {
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "an-access-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            })))
            .up_to_n_times(1)
            .mount(&self.server)
            .await;
    }
}

fn single_sign_on(issuer: &str, settings: &Settings) -> SingleSignOnSettings {
    let mut sso = SingleSignOnSettings::new(
        url::Url::parse(issuer).unwrap(),
        CLIENT_ID,
        CLIENT_SECRET,
        &settings.public_url,
    )
    .unwrap();
    sso.scopes.push("groups".to_owned());
    sso
}

async fn app_with(backend: Backend, issuer: &str, configure: impl Fn(&mut SingleSignOnSettings)) -> Option<TestApp> {
    let issuer = issuer.to_owned();
    spawn_app_with(backend, move |settings| {
        let mut sso = single_sign_on(&issuer, settings);
        configure(&mut sso);
        settings.single_sign_on = Some(sso);
    })
    .await
}

/// A provider and an app that creates accounts at a first sign-in, with a first (admin) user.
async fn creating_accounts(backend: Backend) -> Option<(FakeProvider, TestApp)> {
    let provider = FakeProvider::start().await;
    let app = app_with(backend, &provider.issuer(), |sso| sso.create_users = true).await?;
    app.user().await;
    Some((provider, app))
}

/// A sign-in begun: the provider's authorization URL's `state` and `nonce`, and the sealed
/// cookie as the answer set it.
struct Begun {
    state: String,
    nonce: String,
    cookie: String,
    /// The `prompt` sent to the provider, if any.
    prompt: String,
}

async fn begin(browser: &Browser, path: &str) -> Begun {
    let response = browser.get(path).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with("lanyard_sso="))
        .expect("the sign-in cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Max-Age=600"), "{cookie}");
    let to = url::Url::parse(&location(&response)).unwrap();
    let query = |name: &str| {
        to.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    assert_eq!(query("code_challenge_method"), "S256");
    assert!(!query("code_challenge").is_empty());
    assert_eq!(query("response_type"), "code");
    assert_eq!(query("client_id"), CLIENT_ID);
    Begun {
        state: query("state"),
        nonce: query("nonce"),
        cookie: cookie.split(';').next().unwrap().to_owned(),
        prompt: query("prompt"),
    }
}

async fn callback(browser: &Browser, state: &str) -> (u16, String) {
    let response = browser
        .get(&format!("/auth/oidc/callback?code=the-code&state={state}"))
        .await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Whether the browser holds a session: the management page answers rather than sending it to
/// `/login`.
async fn signed_in(browser: &Browser) -> bool {
    browser.get("/llm-configurations").await.status() == 200
}

/// One whole sign-in with this ID token; the callback's status and page.
async fn sign_in_with(provider: &FakeProvider, browser: &Browser, token: impl FnOnce(&str) -> String) -> (u16, String) {
    let begun = begin(browser, "/auth/oidc/start").await;
    provider.answer_with(token(&begun.nonce)).await;
    callback(browser, &begun.state).await
}

async fn assert_refused(provider: &FakeProvider, app: &TestApp, token: impl FnOnce(&str) -> String, why: &str) {
    let browser = app.browser();
    let (status, page) = sign_in_with(provider, &browser, token).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains(why), "the page should say `{why}`: {page}");
    assert!(!signed_in(&browser).await, "a refused sign-in made a session");
}

async fn user_by_email(app: &TestApp, email: &str) -> Option<users::UserRow> {
    let key = email.to_lowercase();
    app.with_db(move |conn| users::find_by_email_key(conn, &key).unwrap())
        .await
}

async fn a_first_sign_in_makes_an_account_and_a_second_lands_in_it(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    let browser = app.browser();
    let (status, page) = sign_in_with(&provider, &browser, |nonce| {
        provider.sign(&provider.claims(nonce, "person-1", "Person@Example.com"))
    })
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(r#"<meta http-equiv="refresh" content="0; url=/llm-configurations">"#),
        "{page}"
    );
    assert!(page.contains(r#"href="/llm-configurations""#), "{page}");
    assert!(!page.contains("<script"), "no inline script (CSP): {page}");
    assert!(signed_in(&browser).await);
    let user = user_by_email(&app, "person@example.com").await.expect("an account");
    assert_eq!(user.oidc_subject.as_deref(), Some("person-1"));
    assert!(!user.has_password());
    assert_eq!(user.role, lanyard::domain::Role::Member, "never an admin");

    // A second sign-in, from another browser, lands in the same account.
    let again = app.browser();
    let (status, _) = sign_in_with(&provider, &again, |nonce| {
        provider.sign(&provider.claims(nonce, "person-1", "person@example.com"))
    })
    .await;
    assert_eq!(status, 200);
    let settings = again.page("/settings").await;
    assert!(settings.contains("Person@Example.com"), "the same account");
    let count = app.with_db(|conn| users::count(conn).unwrap()).await;
    assert_eq!(count, 2, "no second account");
}

async fn a_wrong_state_is_refused_without_a_session(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    let browser = app.browser();
    let begun = begin(&browser, "/auth/oidc/start").await;
    provider
        .answer_with(provider.sign(&provider.claims(&begun.nonce, "s", "s@example.com")))
        .await;
    let (status, page) = callback(&browser, "not-the-state").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("state does not match"), "{page}");
    assert!(!signed_in(&browser).await);
}

async fn a_replayed_callback_is_refused(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    let browser = app.browser();
    let begun = begin(&browser, "/auth/oidc/start").await;
    let token = provider.sign(&provider.claims(&begun.nonce, "replayed", "replayed@example.com"));
    provider.answer_with(token.clone()).await;
    provider.answer_with(token).await;
    // Sent as an attacker who copied the cookie and the callback URL would send it.
    let url = app.url(&format!("/auth/oidc/callback?code=the-code&state={}", begun.state));
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = plain.get(&url).header("cookie", &begun.cookie).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = plain.get(&url).header("cookie", &begun.cookie).send().await.unwrap();
    assert_eq!(second.status(), 400);
    let has_session = second
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|value| value.to_str().unwrap().starts_with(lanyard::http::session::COOKIE_NAME));
    let page = second.text().await.unwrap();
    assert!(page.contains("already used"), "{page}");
    assert!(!has_session, "a replayed callback made a session");
}

async fn a_callback_without_the_cookie_is_refused(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    let browser = app.browser();
    let begun = begin(&browser, "/auth/oidc/start").await;
    provider
        .answer_with(provider.sign(&provider.claims(&begun.nonce, "s", "s@example.com")))
        .await;
    let other = app.browser();
    let (status, page) = callback(&other, &begun.state).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("cookie is missing"), "{page}");
    assert!(!signed_in(&other).await);
}

async fn an_id_token_with_a_wrong_nonce_is_refused(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    assert_refused(
        &provider,
        &app,
        |_| provider.sign(&provider.claims("another-nonce", "s", "s@example.com")),
        "nonce does not match",
    )
    .await;
}

async fn an_id_token_for_another_audience_is_refused(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    assert_refused(
        &provider,
        &app,
        |nonce| {
            let mut claims = provider.claims(nonce, "s", "s@example.com");
            claims["aud"] = json!("another-client");
            provider.sign(&claims)
        },
        "another audience",
    )
    .await;
}

async fn an_expired_id_token_is_refused(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    assert_refused(
        &provider,
        &app,
        |nonce| {
            let mut claims = provider.claims(nonce, "s", "s@example.com");
            claims["iat"] = json!(now() - 7200);
            claims["exp"] = json!(now() - 3600);
            provider.sign(&claims)
        },
        "expired",
    )
    .await;
}

async fn an_unsigned_id_token_is_refused(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    assert_refused(
        &provider,
        &app,
        |nonce| {
            jws(
                &json!({"alg": "none", "typ": "JWT"}),
                &provider.claims(nonce, "s", "s@example.com"),
                None,
            )
        },
        "ID token",
    )
    .await;
    let made = user_by_email(&app, "s@example.com").await;
    assert!(made.is_none(), "an unsigned token made an account");
}

async fn an_id_token_signed_by_an_unknown_key_is_refused(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    let stranger = SigningKey::random(&mut rand::rngs::OsRng);
    // The provider's own key id, signed by another key; then a key id it never had.
    for kid in ["key-1", "key-unknown"] {
        assert_refused(
            &provider,
            &app,
            |nonce| {
                jws(
                    &json!({"alg": "ES256", "kid": kid, "typ": "JWT"}),
                    &provider.claims(nonce, "s", "s@example.com"),
                    Some(&stranger),
                )
            },
            "signature is not by the identity provider",
        )
        .await;
    }
}

async fn a_rotated_key_is_fetched_again_and_accepted(backend: Backend) {
    let Some((mut provider, app)) = creating_accounts(backend).await else {
        return;
    };
    // The provider rotates: a new key under a new id, served from now on.
    let rotated = SigningKey::random(&mut rand::rngs::OsRng);
    provider.serve_keys(&[public_jwk(&rotated, "key-2")], 1).await;
    provider.key = rotated;
    provider.kid = "key-2".to_owned();
    let browser = app.browser();
    let (status, page) = sign_in_with(&provider, &browser, |nonce| {
        provider.sign(&provider.claims(nonce, "rotated", "rotated@example.com"))
    })
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(signed_in(&browser).await);
}

async fn an_unverified_email_makes_no_account(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    assert_refused(
        &provider,
        &app,
        |nonce| {
            let mut claims = provider.claims(nonce, "unverified", "unverified@example.com");
            claims["email_verified"] = json!(false);
            provider.sign(&claims)
        },
        "has not verified",
    )
    .await;
    assert!(user_by_email(&app, "unverified@example.com").await.is_none());
}

async fn a_verified_email_of_a_password_account_does_not_sign_into_it(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    let owner = app.user().await;
    assert_refused(
        &provider,
        &app,
        |nonce| provider.sign(&provider.claims(nonce, "someone-else", &owner.email.to_uppercase())),
        "sign in with its password, then link single sign-on from Settings",
    )
    .await;
    let row = user_by_email(&app, &owner.email).await.unwrap();
    assert_eq!(row.oidc_subject, None, "not linked either");
}

async fn without_account_creation_an_unknown_person_is_refused(backend: Backend) {
    let provider = FakeProvider::start().await;
    let Some(app) = app_with(backend, &provider.issuer(), |_| {}).await else {
        return;
    };
    app.user().await;
    assert_refused(
        &provider,
        &app,
        |nonce| provider.sign(&provider.claims(nonce, "stranger", "stranger@example.com")),
        "no account is linked",
    )
    .await;
    assert!(user_by_email(&app, "stranger@example.com").await.is_none());
}

async fn single_sign_on_never_makes_the_first_user(backend: Backend) {
    let provider = FakeProvider::start().await;
    let Some(app) = app_with(backend, &provider.issuer(), |sso| sso.create_users = true).await else {
        return;
    };
    assert_refused(
        &provider,
        &app,
        |nonce| provider.sign(&provider.claims(nonce, "first", "first@example.com")),
        "setup link",
    )
    .await;
    let count = app.with_db(|conn| users::count(conn).unwrap()).await;
    assert_eq!(count, 0);
}

async fn a_disabled_user_is_refused_at_the_callback(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    let browser = app.browser();
    let (status, _) = sign_in_with(&provider, &browser, |nonce| {
        provider.sign(&provider.claims(nonce, "to-disable", "to-disable@example.com"))
    })
    .await;
    assert_eq!(status, 200);
    let user = user_by_email(&app, "to-disable@example.com").await.unwrap();
    app.with_db(move |conn| users::set_disabled(conn, user.id, true, chrono::Utc::now().naive_utc()).unwrap())
        .await;
    assert_refused(
        &provider,
        &app,
        |nonce| provider.sign(&provider.claims(nonce, "to-disable", "to-disable@example.com")),
        "disabled",
    )
    .await;
}

async fn a_password_account_links_from_settings_and_unlinks(backend: Backend) {
    let provider = FakeProvider::start().await;
    let Some(app) = app_with(backend, &provider.issuer(), |_| {}).await else {
        return;
    };
    let (user, browser) = app.signed_in_user().await;
    let settings = browser.page("/settings").await;
    assert!(settings.contains("id=\"single-sign-on-link\""), "{settings}");
    let csrf = crate::helpers::csrf_from(&settings);

    // Straight to the provider without the password step: back to /settings.
    let skipped = browser.get("/auth/oidc/start?intent=link").await;
    assert_eq!(skipped.status(), 303);
    assert!(location(&skipped).starts_with("/settings"), "{}", location(&skipped));

    // A wrong password: refused, nothing linked.
    let wrong = browser
        .post_form(
            "/settings/single-sign-on/link",
            &[("csrf_token", csrf.as_str()), ("current_password", "not the password")],
        )
        .await;
    assert_eq!(wrong.status(), 422);

    let step = browser
        .post_form(
            "/settings/single-sign-on/link",
            &[("csrf_token", csrf.as_str()), ("current_password", TEST_PASSWORD)],
        )
        .await;
    assert_eq!(step.status(), 200);
    let moving_on = step.text().await.unwrap();
    assert!(moving_on.contains("url=/auth/oidc/start?intent=link"), "{moving_on}");
    let begun = begin(&browser, "/auth/oidc/start?intent=link").await;
    provider
        .answer_with(provider.sign(&provider.claims(&begun.nonce, "linked-sub", "elsewhere@example.com")))
        .await;
    let (status, page) = callback(&browser, &begun.state).await;
    assert_eq!(status, 200, "{page}");
    let row = user_by_email(&app, &user.email).await.unwrap();
    assert_eq!(row.oidc_subject.as_deref(), Some("linked-sub"));

    // Now single sign-on gets into this account, without account creation.
    let other = app.browser();
    let (status, _) = sign_in_with(&provider, &other, |nonce| {
        provider.sign(&provider.claims(nonce, "linked-sub", "elsewhere@example.com"))
    })
    .await;
    assert_eq!(status, 200);
    assert!(other.page("/settings").await.contains(&user.email));

    // Unlinking (the account has a password).
    let csrf = browser.csrf().await;
    let unlinked = browser
        .post_form("/settings/single-sign-on/unlink", &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(unlinked.status(), 303);
    let row = user_by_email(&app, &user.email).await.unwrap();
    assert_eq!(row.oidc_subject, None);
}

async fn groups_bring_managed_organisations_in_line_at_every_sign_in(backend: Backend) {
    let provider = FakeProvider::start().await;
    let Some(app) = app_with(backend, &provider.issuer(), |sso| {
        sso.create_users = true;
        sso.organisations = SingleSignOnSettings::parse_organisations(
            r#"[{"group": "eng", "organisation": "Engineering", "role": "member"},
                {"group": "cn=leads,ou=groups,dc=example", "organisation": "Engineering", "role": "admin"},
                {"group": "ops", "organisation": "Operations", "role": "member"}]"#,
        )
        .unwrap();
    })
    .await
    else {
        return;
    };
    // "Operations" exists already, made by a person: the mapping never joins it.
    let (_, admin_browser) = app.signed_in_user().await;
    let csrf = admin_browser.csrf().await;
    let made = admin_browser
        .post_form(
            "/organisations",
            &[("csrf_token", csrf.as_str()), ("name", "Operations")],
        )
        .await;
    assert!(made.status().is_redirection() || made.status().is_success());

    let sign_in = |groups: Value| {
        let provider = &provider;
        let app = &app;
        async move {
            let browser = app.browser();
            let (status, page) = sign_in_with(provider, &browser, |nonce| {
                let mut claims = provider.claims(nonce, "engineer", "engineer@example.com");
                claims["groups"] = groups;
                provider.sign(&claims)
            })
            .await;
            assert_eq!(status, 200, "{page}");
        }
    };
    let membership = |name: &'static str| {
        let app = &app;
        async move {
            let user = user_by_email(app, "engineer@example.com").await.unwrap();
            app.with_db(move |conn| {
                let key = OrganisationName::parse(name).unwrap().key();
                let organisation = organisations::find_by_name_key(conn, &key).unwrap()?;
                memberships::find(conn, organisation.id, user.id)
                    .unwrap()
                    .map(|membership| (organisation.managed, membership.role, membership.from_single_sign_on))
            })
            .await
        }
    };

    sign_in(json!(["eng", "ops"])).await;
    let engineering = membership("Engineering").await.expect("a member of Engineering");
    assert_eq!(engineering, (true, lanyard::domain::OrganisationRole::Member, true));
    assert_eq!(
        membership("Operations").await,
        None,
        "never joins what it did not create"
    );

    // A lead: the higher role of the two groups.
    sign_in(json!(["eng", "cn=leads,ou=groups,dc=example"])).await;
    assert_eq!(
        membership("Engineering").await.map(|found| found.1),
        Some(lanyard::domain::OrganisationRole::Admin)
    );

    // Out of the group at the provider: out of the organisation at the next sign-in.
    sign_in(json!([])).await;
    assert_eq!(membership("Engineering").await, None);

    // A membership the mapping did not make is left alone.
    sign_in(json!(["eng"])).await;
    let user = user_by_email(&app, "engineer@example.com").await.unwrap();
    app.with_db(move |conn| {
        let key = OrganisationName::parse("Engineering").unwrap().key();
        let organisation = organisations::find_by_name_key(conn, &key).unwrap().unwrap();
        lanyard::db::write_transaction(conn, |conn| -> diesel::QueryResult<()> {
            memberships::delete(conn, organisation.id, user.id)?;
            memberships::insert(
                conn,
                &memberships::MembershipRow {
                    organisation_id: organisation.id,
                    user_id: user.id,
                    role: lanyard::domain::OrganisationRole::Member,
                    share_personal_configurations: false,
                    created_at: chrono::Utc::now().naive_utc(),
                    updated_at: chrono::Utc::now().naive_utc(),
                    from_single_sign_on: false,
                },
            )
        })
        .unwrap();
    })
    .await;
    sign_in(json!([])).await;
    assert!(membership("Engineering").await.is_some(), "an invited membership stays");
}

async fn an_account_without_a_password_re_authenticates_by_single_sign_on_for_a_resolve_token(backend: Backend) {
    let Some((provider, app)) = creating_accounts(backend).await else {
        return;
    };
    let browser = app.browser();
    let (status, _) = sign_in_with(&provider, &browser, |nonce| {
        provider.sign(&provider.claims(nonce, "sso-only", "sso-only@example.com"))
    })
    .await;
    assert_eq!(status, 200);
    let settings = browser.page("/settings").await;
    assert!(settings.contains("/auth/oidc/start?reauth=1"), "{settings}");
    let refused = create(&browser).await;
    assert_eq!(refused.status(), 422, "no password and no re-authentication");

    let begun = begin(&browser, "/auth/oidc/start?reauth=1&next=/settings").await;
    assert_eq!(begun.prompt, "login", "the person proves themselves now");
    provider
        .answer_with(provider.sign(&provider.claims(&begun.nonce, "sso-only", "sso-only@example.com")))
        .await;
    let (status, page) = callback(&browser, &begun.state).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("url=/settings"), "{page}");
    let created = create(&browser).await;
    let body = created.text().await.unwrap();
    assert!(body.contains("lny_"), "the token is shown once: {body}");

    // Another identity cannot re-authenticate this account.
    let begun = begin(&browser, "/auth/oidc/start?intent=reauthenticate").await;
    provider
        .answer_with(provider.sign(&provider.claims(&begun.nonce, "someone-else", "x@example.com")))
        .await;
    let (status, page) = callback(&browser, &begun.state).await;
    assert_eq!(status, 400, "{page}");
}

/// Creates a `resolve` token from `/settings` without a password.
async fn create(browser: &Browser) -> reqwest::Response {
    let csrf = browser.csrf().await;
    browser
        .post_form(
            "/settings/tokens",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "runtime"),
                ("scopes", "resolve"),
                ("current_password", ""),
            ],
        )
        .await
}

async fn password_login_off_hides_the_form_and_refuses_passwords(backend: Backend) {
    let provider = FakeProvider::start().await;
    let issuer = provider.issuer();
    let Some(app) = spawn_app_with(backend, move |settings| {
        settings.single_sign_on = Some(single_sign_on(&issuer, settings));
        settings.password_login = false;
    })
    .await
    else {
        return;
    };
    let user = app.user().await;
    let browser = app.browser();
    let login = browser.page("/login").await;
    assert!(!login.contains("name=\"password\""), "{login}");
    assert!(login.contains("Sign in with Single sign-on"), "{login}");
    let csrf = crate::helpers::csrf_from(&login);
    let response = browser
        .post_form(
            "/login",
            &[
                ("csrf_token", csrf.as_str()),
                ("email", user.email.as_str()),
                ("password", TEST_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(!signed_in(&browser).await);
}

async fn an_unreachable_provider_leaves_password_sign_in_working_until_it_comes_up(backend: Backend) {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let Some(app) = app_with(backend, &issuer, |sso| sso.create_users = true).await else {
        return;
    };
    let user = app.user().await;
    let login = app.browser().page("/login").await;
    assert!(login.contains("Single sign-on is unavailable"), "{login}");
    assert!(login.contains("name=\"password\""));
    app.login(&user.email, TEST_PASSWORD).await;
    let started = app.browser().get("/auth/oidc/start").await;
    assert_eq!(started.status(), 503);

    // The provider comes up: within a few seconds single sign-on works, without a restart.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let provider = FakeProvider::on(MockServer::builder().listener(listener).start().await).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let login = app.browser().page("/login").await;
        if login.contains("href=\"/auth/oidc/start\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "single sign-on never became available"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let browser = app.browser();
    let (status, page) = sign_in_with(&provider, &browser, |nonce| {
        provider.sign(&provider.claims(nonce, "late", "late@example.com"))
    })
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(signed_in(&browser).await);
}
