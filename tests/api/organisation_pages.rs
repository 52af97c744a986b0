//! An organisation's resources on its pages: admins add its connections, configurations and
//! webhooks with the forms of `/organisations/{id}` (JavaScript off: 303; htmx: the section);
//! a member sees them masked, may choose a configuration as default, and is refused every write
//! (403); anyone else gets the 404 of a missing id; the management page shows them in a section
//! per organisation after the member's own, and the selectors in an `<optgroup>`. No page a
//! member (or an admin) can fetch carries the organisation's key.

use serde_json::{Value, json};

use crate::helpers::configurations::{Configuration, expect_json};
use crate::helpers::organisations::Team;
use crate::helpers::pages::{assert_marked_invalid, is_fragment, row_of, row_with_id};
use crate::helpers::{Browser, TEST_PASSWORD, TestApp, TestUser, location};
use crate::on_both_backends;

on_both_backends!(
    an_admin_adds_the_organisations_connection_and_configurations_with_the_pages_forms,
    an_invalid_organisation_form_answers_422_with_each_error_beside_its_field,
    a_member_sees_the_organisations_resources_masked_and_is_refused_every_write,
    an_outsider_gets_the_same_404_as_for_a_missing_organisation,
    an_admin_edits_and_deletes_the_organisations_resources_on_their_item_pages,
    the_management_page_shows_an_organisations_configurations_in_its_own_section_after_the_members_own,
    a_member_picks_an_organisation_configuration_as_default_and_pins_it_with_and_without_htmx,
    an_admin_adds_pings_and_deletes_an_organisation_webhook_on_its_page_and_sees_the_secret_once,
);

const ORG_KEY: &str = "sk-organisation-key-0123456789xQ7z";
const INLINE_KEY: &str = "sk-inline-organisation-0123456789Lm4k";

async fn signed_in(app: &TestApp, user: &TestUser) -> Browser {
    app.login(&user.email, TEST_PASSWORD).await
}

fn page_path(team: &Team) -> String {
    format!("/organisations/{}", team.id)
}

fn connection_fields<'a>(csrf: &'a str, name: &'a str, api_key: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("csrf_token", csrf),
        ("name", name),
        ("provider", "openai"),
        ("api_key", api_key),
        ("base_url", ""),
    ]
}

fn configuration_fields<'a>(
    csrf: &'a str,
    name: &'a str,
    connection_id: &'a str,
    model: &'a str,
    member_access: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("csrf_token", csrf),
        ("name", name),
        ("connection_id", connection_id),
        ("model", model),
        ("provider", "openai"),
        ("api_key", ""),
        ("base_url", ""),
        ("is_active", "true"),
        ("member_access", member_access),
    ]
}

/// A team whose admin added a connection (with `ORG_KEY`) and a configuration on it through the
/// pages; the configuration as the API shows it.
async fn team_with_a_configuration(app: &TestApp) -> (Team, Browser, Configuration) {
    let team = Team::new(app, "Platform team").await;
    let admin = signed_in(app, &team.admin).await;
    let csrf = admin.csrf().await;
    let to = admin
        .form_redirect(
            &format!("{}/connections", page_path(&team)),
            &connection_fields(&csrf, "team-openai", ORG_KEY),
        )
        .await;
    assert_eq!(to, format!("{}?done=saved", page_path(&team)));
    let connection = team.connections(app, &team.admin.token).await.remove(0);
    let connection_id = connection.id.to_string();
    let to = admin
        .form_redirect(
            &format!("{}/llm-configurations", page_path(&team)),
            &configuration_fields(&csrf, "team-gpt", &connection_id, "gpt-4o", "use"),
        )
        .await;
    assert_eq!(to, format!("{}?done=saved", page_path(&team)));
    let configuration = team.configurations(app, &team.admin.token).await.remove(0);
    (team, admin, configuration)
}

async fn an_admin_adds_the_organisations_connection_and_configurations_with_the_pages_forms(app: TestApp) {
    let team = Team::new(&app, "Platform team").await;
    let admin = signed_in(&app, &team.admin).await;
    let page = admin.page(&page_path(&team)).await;
    for action in ["connections", "llm-configurations", "webhooks"] {
        assert!(
            page.contains(&format!(r#"action="/organisations/{}/{action}""#, team.id)),
            "{action}: {page}"
        );
    }
    let csrf = admin.csrf().await;

    // JavaScript off: a connection, then a configuration on it that members may reveal.
    admin
        .form_redirect(
            &format!("{}/connections", page_path(&team)),
            &connection_fields(&csrf, "team-openai", ORG_KEY),
        )
        .await;
    let connections = team.connections(&app, &team.admin.token).await;
    assert_eq!(connections.len(), 1);
    let connection = &connections[0];
    assert_eq!(connection.name, "team-openai");
    assert!(connection.has_api_key);
    let connection_id = connection.id.to_string();
    admin
        .form_redirect(
            &format!("{}/llm-configurations", page_path(&team)),
            &configuration_fields(&csrf, "team-gpt", &connection_id, "gpt-4o", "reveal"),
        )
        .await;

    // With htmx: a configuration with a provider and key of its own, answered with the section.
    let mut inline = configuration_fields(&csrf, "team-mini", "new", "gpt-4o-mini", "");
    inline.retain(|(field, _)| *field != "api_key");
    inline.push(("api_key", INLINE_KEY));
    let section = admin
        .form_answer(&format!("{}/llm-configurations", page_path(&team)), &inline, true, 200)
        .await;
    assert!(is_fragment(&section), "{section}");
    assert!(section.contains(r#"id="configurations-heading""#), "{section}");
    assert!(section.contains("team-mini"), "{section}");
    assert!(!section.contains(INLINE_KEY), "never the key: {section}");

    let configurations = team.configurations(&app, &team.admin.token).await;
    let by_name = |name: &str| configurations.iter().find(|c| c.name == name).unwrap().clone();
    let on_connection = by_name("team-gpt");
    assert_eq!(on_connection.connection_id, connection.id);
    assert_eq!(on_connection.other["member_access"], "reveal");
    assert!(!on_connection.is_default, "nobody's default until a member chooses it");
    let with_its_own = by_name("team-mini");
    assert_ne!(with_its_own.connection_id, connection.id);
    assert_eq!(with_its_own.other["member_access"], "use");
    assert_eq!(with_its_own.provider, "openai");
    assert!(with_its_own.has_api_key);

    // With htmx the connection form answers with its section, the new row in it.
    let section = admin
        .form_answer(
            &format!("{}/connections", page_path(&team)),
            &connection_fields(&csrf, "second-openai", "sk-second-organisation-0123456789"),
            true,
            200,
        )
        .await;
    assert!(is_fragment(&section), "{section}");
    let second = team
        .connections(&app, &team.admin.token)
        .await
        .into_iter()
        .find(|connection| connection.name == "second-openai")
        .unwrap();
    assert!(
        row_with_id(&section, &format!("connection-{}", second.id)).is_some(),
        "{section}"
    );
    // The configuration form's picker (swapped out of band) offers the new connection at once.
    let picker = &section[section
        .find(r##"hx-swap-oob="innerHTML:#organisation-configurations""##)
        .expect("the configurations section, out of band")..];
    assert!(
        picker.contains(&format!(r#"<option value="{}""#, second.id)),
        "{picker}"
    );

    let page = admin.page(&page_path(&team)).await;
    let row = row_of(&page, on_connection.id).expect("the configuration's row");
    assert!(row.contains("team-openai") && row.contains("gpt-4o"), "{row}");
    assert!(row.contains(r#"data-member-access="reveal""#), "{row}");
    assert!(row.contains(on_connection.api_key_masked.as_deref().unwrap()), "{row}");
    let row = row_with_id(&page, &format!("connection-{}", connection.id)).expect("the connection's row");
    assert!(row.contains("<span data-configuration-count>1</span>"), "{row}");
    assert!(row.contains(connection.api_key_masked.as_deref().unwrap()), "{row}");
    for key in [ORG_KEY, INLINE_KEY] {
        assert!(!page.contains(key), "the page never carries a key: {page}");
    }
}

async fn an_invalid_organisation_form_answers_422_with_each_error_beside_its_field(app: TestApp) {
    let team = Team::new(&app, "Platform team").await;
    let admin = signed_in(&app, &team.admin).await;
    let csrf = admin.csrf().await;
    for htmx in [false, true] {
        let answer = admin
            .form_answer(
                &format!("{}/connections", page_path(&team)),
                &connection_fields(&csrf, "", ORG_KEY),
                htmx,
                422,
            )
            .await;
        assert_eq!(is_fragment(&answer), htmx, "{answer}");
        assert_marked_invalid(&answer, "connection-name");
        assert!(!answer.contains(ORG_KEY), "the key is not shown again: {answer}");

        let answer = admin
            .form_answer(
                &format!("{}/llm-configurations", page_path(&team)),
                &[
                    ("csrf_token", csrf.as_str()),
                    ("name", "team-gpt"),
                    ("connection_id", "new"),
                    ("model", ""),
                    ("provider", "openai"),
                    ("api_key", INLINE_KEY),
                    ("base_url", ""),
                    ("is_active", "true"),
                    ("member_access", "everything"),
                ],
                htmx,
                422,
            )
            .await;
        assert_eq!(is_fragment(&answer), htmx, "{answer}");
        assert_marked_invalid(&answer, "model");
        assert_marked_invalid(&answer, "member_access");
        assert!(answer.contains(r#"value="team-gpt""#), "what was typed stays: {answer}");
        assert!(!answer.contains(INLINE_KEY), "the key is not shown again: {answer}");
    }
    // A configuration on a connection that is not the organisation's is refused by name.
    let own = crate::helpers::connections::create_openai_connection(
        &app,
        &team.admin.token,
        "my-own",
        "sk-my-own-key-0123456789abcdef",
    )
    .await;
    let own_id = own.id.to_string();
    let answer = admin
        .form_answer(
            &format!("{}/llm-configurations", page_path(&team)),
            &configuration_fields(&csrf, "team-gpt", &own_id, "gpt-4o", "use"),
            false,
            422,
        )
        .await;
    assert!(answer.contains(r#"id="connection_id-error""#), "{answer}");
    assert!(team.configurations(&app, &team.admin.token).await.is_empty());
    assert!(team.connections(&app, &team.admin.token).await.is_empty());
}

async fn a_member_sees_the_organisations_resources_masked_and_is_refused_every_write(app: TestApp) {
    let (team, _, configuration) = team_with_a_configuration(&app).await;
    let connection = team.connections(&app, &team.admin.token).await.remove(0);
    let member = signed_in(&app, &team.member_a).await;
    let page = member.page(&page_path(&team)).await;
    let row = row_of(&page, configuration.id).expect("the member sees the configuration");
    assert!(
        row.contains("team-gpt") && row.contains("gpt-4o") && row.contains("OpenAI"),
        "{row}"
    );
    assert!(row.contains(configuration.api_key_masked.as_deref().unwrap()), "{row}");
    assert!(!row.contains(r#"data-action="edit""#), "{row}");
    let row = row_with_id(&page, &format!("connection-{}", connection.id)).expect("the member sees the connection");
    assert!(row.contains(connection.api_key_masked.as_deref().unwrap()), "{row}");
    assert!(!row.contains(r#"data-action="delete""#), "{row}");
    for form in ["organisation-connection-form", "configuration-form", "webhook-form"] {
        assert!(
            !page.contains(&format!(r#"id="{form}""#)),
            "no {form} for a member: {page}"
        );
    }

    let csrf = member.csrf().await;
    let connection_id = connection.id.to_string();
    let writes: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("{}/connections", page_path(&team)),
            connection_fields(&csrf, "member-openai", "sk-member-key-0123456789abcdef"),
        ),
        (
            format!("{}/llm-configurations", page_path(&team)),
            configuration_fields(&csrf, "member-gpt", &connection_id, "gpt-4o", "use"),
        ),
        (
            format!("{}/webhooks", page_path(&team)),
            vec![("csrf_token", &csrf), ("url", "https://hooks.example.com/member")],
        ),
        (
            format!("/connections/{}", connection.id),
            connection_fields(&csrf, "renamed", ""),
        ),
        (
            format!("/connections/{}/delete", connection.id),
            vec![("csrf_token", &csrf)],
        ),
        (
            format!("/llm-configurations/{}", configuration.id),
            configuration_fields(&csrf, "renamed", &connection_id, "gpt-4o", "reveal"),
        ),
        (
            format!("/llm-configurations/{}/delete", configuration.id),
            vec![("csrf_token", &csrf)],
        ),
        (
            format!("/llm-configurations/{}/active", configuration.id),
            vec![("csrf_token", &csrf), ("is_active", "false")],
        ),
    ];
    for (path, fields) in &writes {
        for htmx in [false, true] {
            let response = crate::helpers::forms::submit(&member, path, fields, htmx).await;
            assert_eq!(response.status(), 403, "POST {path} (htmx {htmx}) by a member");
        }
    }
    let response = member
        .get(&format!("/llm-configurations/{}/edit", configuration.id))
        .await;
    assert_eq!(response.status(), 403, "the edit form is not a member's");
    // Nothing changed.
    let after = team.configurations(&app, &team.admin.token).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].name, "team-gpt");
    assert!(after[0].is_active);
    let connections = team.connections(&app, &team.admin.token).await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].name, "team-openai");

    // The connection's own page shows it to the member, without the forms that change it.
    let detail = member.page(&format!("/connections/{}", connection.id)).await;
    assert!(
        detail.contains(connection.api_key_masked.as_deref().unwrap()),
        "{detail}"
    );
    assert!(!detail.contains(r#"id="connection-form""#), "{detail}");
    assert!(!detail.contains(ORG_KEY));
}

async fn an_outsider_gets_the_same_404_as_for_a_missing_organisation(app: TestApp) {
    let (team, _, configuration) = team_with_a_configuration(&app).await;
    let connection = team.connections(&app, &team.admin.token).await.remove(0);
    let outsider = app.user().await;
    let outsider = signed_in(&app, &outsider).await;
    let csrf = outsider.csrf().await;
    let missing = uuid::Uuid::now_v7();
    for organisation in [team.id.clone(), missing.to_string()] {
        let response = outsider.get(&format!("/organisations/{organisation}")).await;
        assert_eq!(response.status(), 404);
        for (form, fields) in [
            (
                "connections",
                connection_fields(&csrf, "x-openai", "sk-outsider-key-0123456789abcd"),
            ),
            (
                "llm-configurations",
                configuration_fields(&csrf, "x-gpt", "new", "gpt-4o", "use"),
            ),
            (
                "webhooks",
                vec![("csrf_token", csrf.as_str()), ("url", "https://hooks.example.com/x")],
            ),
        ] {
            let path = format!("/organisations/{organisation}/{form}");
            let response = outsider.post_form(&path, &fields).await;
            assert_eq!(response.status(), 404, "POST {path}");
        }
    }
    for path in [
        format!("/connections/{}", connection.id),
        format!("/llm-configurations/{}/edit", configuration.id),
        format!("/llm-configurations/{}/delete", configuration.id),
    ] {
        assert_eq!(outsider.get(&path).await.status(), 404, "GET {path}");
    }
    let response = outsider
        .post_form(
            &format!("/llm-configurations/{}/set-default", configuration.id),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(response.status(), 404);
    for path in ["/llm-configurations", "/settings", "/conversations"] {
        let page = outsider.page(path).await;
        assert!(!page.contains("team-gpt"), "{path}: {page}");
    }
}

async fn an_admin_edits_and_deletes_the_organisations_resources_on_their_item_pages(app: TestApp) {
    let (team, admin, configuration) = team_with_a_configuration(&app).await;
    let connection = team.connections(&app, &team.admin.token).await.remove(0);
    let csrf = admin.csrf().await;

    // The configuration's edit form offers the organisation's connections and `member_access`.
    let form = admin
        .page(&format!("/llm-configurations/{}/edit", configuration.id))
        .await;
    assert!(
        form.contains(&format!(r#"<option value="{}" selected>"#, connection.id)),
        "the picker shows the organisation's connection: {form}"
    );
    assert!(form.contains(r#"id="member_access""#), "{form}");
    let connection_id = connection.id.to_string();
    let to = admin
        .form_redirect(
            &format!("/llm-configurations/{}", configuration.id),
            &configuration_fields(&csrf, "team-gpt-4o", &connection_id, "gpt-4o-2024", "reveal"),
        )
        .await;
    assert_eq!(to, "/llm-configurations");
    let edited = &team.configurations(&app, &team.admin.token).await[0];
    assert_eq!(edited.name, "team-gpt-4o");
    assert_eq!(edited.model, "gpt-4o-2024");
    assert_eq!(edited.other["member_access"], "reveal");

    // The connection's own page: an empty key keeps the key; back to the organisation's page.
    let to = admin
        .form_redirect(
            &format!("/connections/{}", connection.id),
            &connection_fields(&csrf, "team-openai-renamed", ""),
        )
        .await;
    assert_eq!(to, page_path(&team));
    let renamed = team.connections(&app, &team.admin.token).await.remove(0);
    assert_eq!(renamed.name, "team-openai-renamed");
    assert_eq!(renamed.api_key_masked, connection.api_key_masked);

    // Deleting: refused while the configuration uses it, then the configuration, then it.
    let response = admin
        .post_form(
            &format!("/connections/{}/delete", connection.id),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("team-gpt-4o"));
    // Test and Delete from the organisation's page lead back to it.
    let to = admin
        .form_redirect(
            &format!("/llm-configurations/{}/test", configuration.id),
            &[("csrf_token", csrf.as_str()), ("back", "organisation")],
        )
        .await;
    assert_eq!(to, page_path(&team));
    let confirm = admin
        .page(&format!(
            "/llm-configurations/{}/delete?back=organisation",
            configuration.id
        ))
        .await;
    assert!(confirm.contains("team-gpt-4o"), "{confirm}");
    assert!(
        confirm.contains(r#"<input type="hidden" name="back" value="organisation">"#),
        "{confirm}"
    );
    let to = admin
        .form_redirect(
            &format!("/llm-configurations/{}/delete", configuration.id),
            &[("csrf_token", csrf.as_str()), ("back", "organisation")],
        )
        .await;
    assert_eq!(to, page_path(&team));
    assert!(team.configurations(&app, &team.admin.token).await.is_empty());
    let to = admin
        .form_redirect(
            &format!("/connections/{}/delete", connection.id),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(to, page_path(&team));
    assert!(team.connections(&app, &team.admin.token).await.is_empty());
}

async fn the_management_page_shows_an_organisations_configurations_in_its_own_section_after_the_members_own(
    app: TestApp,
) {
    let (team, _, configuration) = team_with_a_configuration(&app).await;
    let own: Configuration = expect_json(
        app.post_json(
            "/api/llm-configurations",
            &team.member_a.token,
            &json!({"name": "zz-mine", "provider": "openai", "model": "gpt-4o", "api_key": "sk-member-own-0123456789abcdef"}),
        )
        .await,
        201,
        "own configuration",
    )
    .await;
    let member = signed_in(&app, &team.member_a).await;
    let page = member.page("/llm-configurations").await;
    let own_row = page
        .find(&format!(r#"id="configuration-{}""#, own.id))
        .expect("the member's own row");
    let section = page
        .find(r#"data-organisation="Platform team""#)
        .expect("a section for the organisation");
    let org_row = page
        .find(&format!(r#"id="configuration-{}""#, configuration.id))
        .expect("the organisation's row");
    assert!(
        own_row < section && section < org_row,
        "own first, then the organisation's section: {page}"
    );
    assert!(
        page[section..org_row].contains(r#"class="organisation-heading">Platform team</h2>"#),
        "the section's heading names the organisation: {page}"
    );
    let row = row_of(&page, configuration.id).unwrap();
    assert!(row.contains(configuration.api_key_masked.as_deref().unwrap()), "{row}");
    assert!(!page.contains(ORG_KEY), "{page}");

    // A member without configurations of their own sees the organisation's section alone.
    let other = signed_in(&app, &team.member_b).await;
    let page = other.page("/llm-configurations").await;
    assert!(page.contains(r#"data-organisation="Platform team""#), "{page}");
    assert!(page.contains(r#"id="no-own-configurations""#), "{page}");
    assert!(row_of(&page, configuration.id).is_some());
}

async fn a_member_picks_an_organisation_configuration_as_default_and_pins_it_with_and_without_htmx(app: TestApp) {
    let (team, _, configuration) = team_with_a_configuration(&app).await;
    let member = signed_in(&app, &team.member_a).await;
    let settings = member.page("/settings").await;
    let group = settings
        .find(r#"<optgroup label="Platform team">"#)
        .expect("the selector offers the organisation's configurations in a group");
    let option = settings
        .find(&format!(r#"<option value="{}""#, configuration.id))
        .expect("the organisation's configuration is offered");
    assert!(group < option && option < group + settings[group..].find("</optgroup>").unwrap());
    let csrf = member.csrf().await;
    let id = configuration.id.to_string();
    for htmx in [false, true] {
        if htmx {
            // Back to no default, so that the htmx choice is seen to make it again.
            let user_id = team.member_a.id;
            app.with_db(move |conn| {
                use diesel::prelude::*;
                diesel::delete(
                    lanyard::db::schema::user_defaults::table
                        .filter(lanyard::db::schema::user_defaults::user_id.eq(lanyard::db::DbId(user_id))),
                )
                .execute(conn)
                .unwrap()
            })
            .await;
        }
        let response = crate::helpers::forms::submit(
            &member,
            "/settings/default",
            &[("csrf_token", csrf.as_str()), ("configuration_id", id.as_str())],
            htmx,
        )
        .await;
        let status = response.status();
        let answer_to = location(&response);
        let body = response.text().await.unwrap();
        if htmx {
            assert_eq!(status, 200, "{body}");
            assert!(is_fragment(&body), "{body}");
            assert!(
                body.contains(r#"id="default-details""#) && body.contains("team-gpt"),
                "{body}"
            );
            assert!(body.contains(r#"data-badge="organisation">Platform team"#), "{body}");
        } else {
            assert_eq!(status, 303, "{body}");
            assert_eq!(answer_to, "/settings");
        }
        let mine: Vec<Value> = expect_json(
            app.get("/api/llm-configurations", &team.member_a.token).await,
            200,
            "list",
        )
        .await;
        let chosen = mine.iter().find(|c| c["id"] == id.as_str()).unwrap();
        assert_eq!(chosen["is_default"], true, "htmx {htmx}");
    }
    let settings = member.page("/settings").await;
    assert!(
        settings.contains(&format!(r#"<option value="{}" selected>"#, configuration.id)),
        "{settings}"
    );
    // "Use as my default" on the organisation's page leads back there; on the management page,
    // to it.
    let to = member
        .form_redirect(
            &format!("/llm-configurations/{id}/set-default"),
            &[("csrf_token", csrf.as_str()), ("back", "organisation")],
        )
        .await;
    assert_eq!(to, page_path(&team));
    let to = member
        .form_redirect(
            &format!("/llm-configurations/{id}/set-default"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(to, "/llm-configurations");
    assert!(!settings.contains(ORG_KEY));
    // Nobody else's default moved.
    let others: Vec<Value> = expect_json(
        app.get("/api/llm-configurations", &team.member_b.token).await,
        200,
        "list",
    )
    .await;
    assert!(others.iter().all(|c| c["is_default"] == false));

    // The pin form offers it too, grouped the same way, and pinning works without JavaScript.
    let conversations = member.page("/conversations").await;
    assert!(
        conversations.contains(r#"<optgroup label="Platform team">"#),
        "{conversations}"
    );
    let to = member
        .form_redirect(
            "/conversations",
            &[
                ("csrf_token", csrf.as_str()),
                ("conversation_id", "conv-1"),
                ("configuration_id", id.as_str()),
            ],
        )
        .await;
    assert_eq!(to, "/conversations");
    let conversations = member.page("/conversations").await;
    assert!(
        conversations.contains(r#"data-conversation="conv-1""#),
        "{conversations}"
    );
    assert!(!conversations.contains(ORG_KEY));
}

async fn an_admin_adds_pings_and_deletes_an_organisation_webhook_on_its_page_and_sees_the_secret_once(app: TestApp) {
    let team = Team::new(&app, "Platform team").await;
    let admin = signed_in(&app, &team.admin).await;
    let csrf = admin.csrf().await;
    let path = format!("{}/webhooks", page_path(&team));
    for htmx in [false, true] {
        let url = format!("https://hooks.example.com/lanyard-{htmx}");
        let answer = admin
            .form_answer(
                &path,
                &[
                    ("csrf_token", csrf.as_str()),
                    ("url", url.as_str()),
                    ("events", "connection.failed"),
                ],
                htmx,
                200,
            )
            .await;
        assert_eq!(is_fragment(&answer), htmx, "{answer}");
        let start = answer
            .find(r#"<code id="new-webhook-secret">"#)
            .expect("the secret, shown once")
            + 30;
        let secret = &answer[start..start + answer[start..].find('<').unwrap()];
        assert!(secret.starts_with("whsec_"), "{secret}");
        let page = admin.page(&page_path(&team)).await;
        assert!(page.contains(&url), "{page}");
        assert!(!page.contains(secret), "the secret is never shown again: {page}");
    }
    let hooks: Vec<Value> = expect_json(
        app.get(&team.path("webhooks"), &team.admin.token).await,
        200,
        "webhooks",
    )
    .await;
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|hook| hook["organisation_id"] == team.id.as_str()));
    let first = hooks[0]["id"].as_str().unwrap().to_owned();
    let second = hooks[1]["id"].as_str().unwrap().to_owned();

    // Ping queues a delivery; delete removes it (JavaScript off, then htmx).
    let to = admin
        .form_redirect(&format!("{path}/{first}/ping"), &[("csrf_token", csrf.as_str())])
        .await;
    assert!(to.starts_with(&page_path(&team)), "{to}");
    admin
        .form_redirect(&format!("{path}/{first}/delete"), &[("csrf_token", csrf.as_str())])
        .await;
    let section = admin
        .form_answer(
            &format!("{path}/{second}/delete"),
            &[("csrf_token", csrf.as_str())],
            true,
            200,
        )
        .await;
    assert!(section.contains("No webhooks yet."), "{section}");
    let hooks: Vec<Value> = expect_json(
        app.get(&team.path("webhooks"), &team.admin.token).await,
        200,
        "webhooks",
    )
    .await;
    assert!(hooks.is_empty());

    // A member sees no webhooks section, and is refused the posts.
    let member = signed_in(&app, &team.member_a).await;
    let page = member.page(&page_path(&team)).await;
    assert!(!page.contains(r#"id="webhooks-section""#), "{page}");
    let member_csrf = member.csrf().await;
    let response = member
        .post_form(
            &path,
            &[
                ("csrf_token", member_csrf.as_str()),
                ("url", "https://hooks.example.com/m"),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    // A personal webhook is not the organisation's page's to delete.
    let personal: Value = expect_json(
        app.post_json(
            "/api/webhooks",
            &team.admin.token,
            &json!({"url": "https://hooks.example.com/mine", "events": ["*"]}),
        )
        .await,
        201,
        "personal webhook",
    )
    .await;
    let response = admin
        .post_form(
            &format!("{path}/{}/delete", personal["id"].as_str().unwrap()),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(response.status(), 404);
}
