//! Organisations as the tests build them: a team with an owner, an admin and two members (each
//! invited and accepting), and the calls on an organisation's own resources.

use serde_json::{Value, json};

use crate::helpers::configurations::{Configuration, expect_json};
use crate::helpers::connections::Connection;
use crate::helpers::{TestApp, TestUser};

/// Creates an organisation named `name` with `token`; its id.
pub async fn create_organisation(app: &TestApp, token: &str, name: &str) -> String {
    let body: Value = expect_json(
        app.post_json("/api/organisations", token, &json!({"name": name})).await,
        201,
        "create organisation",
    )
    .await;
    body["id"].as_str().unwrap().to_owned()
}

/// `user` invited by `inviter` with `role`, and accepting: a member.
pub async fn join(app: &TestApp, inviter: &TestUser, organisation: &str, user: &TestUser, role: &str) {
    let invited = app
        .post_json(
            &format!("/api/organisations/{organisation}/members"),
            &inviter.token,
            &json!({"email": user.email, "role": role}),
        )
        .await;
    assert_eq!(invited.status(), 202);
    let accepted: Value = expect_json(
        app.post_json(
            &format!("/api/organisations/{organisation}/invitation/accept"),
            &user.token,
            &json!({}),
        )
        .await,
        200,
        "accept",
    )
    .await;
    assert_eq!(accepted["role"], role);
}

/// An organisation with its owner, an admin and two members, each of whom accepted.
pub struct Team {
    pub id: String,
    pub owner: TestUser,
    pub admin: TestUser,
    pub member_a: TestUser,
    pub member_b: TestUser,
}

impl Team {
    pub async fn new(app: &TestApp, name: &str) -> Team {
        let owner = app.user().await;
        let id = create_organisation(app, &owner.token, name).await;
        let admin = app.user().await;
        join(app, &owner, &id, &admin, "admin").await;
        let member_a = app.user().await;
        join(app, &owner, &id, &member_a, "member").await;
        let member_b = app.user().await;
        join(app, &admin, &id, &member_b, "member").await;
        Team {
            id,
            owner,
            admin,
            member_a,
            member_b,
        }
    }

    /// `/api/organisations/{id}/{rest}`.
    pub fn path(&self, rest: &str) -> String {
        format!("/api/organisations/{}/{rest}", self.id)
    }

    /// `POST /api/organisations/{id}/connections` by `token`; panics unless 201.
    pub async fn create_connection(&self, app: &TestApp, token: &str, body: Value) -> Connection {
        expect_json(
            app.post_json(&self.path("connections"), token, &body).await,
            201,
            "create organisation connection",
        )
        .await
    }

    /// `POST /api/organisations/{id}/llm-configurations` by `token`; panics unless 201.
    pub async fn create_configuration(&self, app: &TestApp, token: &str, body: Value) -> Configuration {
        expect_json(
            app.post_json(&self.path("llm-configurations"), token, &body).await,
            201,
            "create organisation configuration",
        )
        .await
    }

    /// `GET /api/organisations/{id}/llm-configurations` by `token`; panics unless 200.
    pub async fn configurations(&self, app: &TestApp, token: &str) -> Vec<Configuration> {
        expect_json(
            app.get(&self.path("llm-configurations"), token).await,
            200,
            "organisation configurations",
        )
        .await
    }

    /// `GET /api/organisations/{id}/connections` by `token`; panics unless 200.
    pub async fn connections(&self, app: &TestApp, token: &str) -> Vec<Connection> {
        expect_json(
            app.get(&self.path("connections"), token).await,
            200,
            "organisation connections",
        )
        .await
    }
}
