//! `/conversations`: the user's per-conversation overrides, each with a selector to change or
//! remove it, and a form to pin another conversation.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::respond::{html, see_other};
use super::views::{
    ConfigurationGroup, ConfigurationView, HtmlId, Layout, configuration_views, display_time, grouped_where,
};
use crate::domain::{ConversationId, UserCap};
use crate::error::{AppError, FieldErrors};
use crate::http::AppState;
use crate::http::auth::{ProtectedForm, SignedIn, is_htmx};
use crate::http::page_error::PageResult;
use crate::services::conversations::{self, ConversationsError};
use crate::services::{Work, configurations};

const PAGE: &str = "/conversations";

pub struct OverrideView {
    pub conversation_id: String,
    /// The id as a path segment.
    pub conversation_path: String,
    pub configuration_id: HtmlId,
    pub effective: bool,
    pub updated_at: String,
}

struct PageData {
    overrides: Vec<OverrideView>,
    configurations: Vec<ConfigurationView>,
}

fn load(conn: &mut Work, owner: Uuid) -> Result<PageData, AppError> {
    let configurations = configuration_views(configurations::list(conn, owner)?);
    let overrides = conversations::list(conn, owner)?
        .into_iter()
        .map(|row| {
            let configuration_id = HtmlId(row.configuration_id);
            let effective = configurations.iter().any(|c| c.id == configuration_id && c.is_active);
            OverrideView {
                conversation_path: url::form_urlencoded::byte_serialize(row.conversation_id.as_bytes())
                    .collect::<String>()
                    .replace('+', "%20"),
                conversation_id: row.conversation_id,
                configuration_id,
                effective,
                updated_at: display_time(row.updated_at),
            }
        })
        .collect();
    Ok(PageData {
        overrides,
        configurations,
    })
}

#[derive(Template)]
#[template(path = "conversations/page.html")]
struct ConversationsPage {
    layout: Layout,
    csrf_token: String,
    overrides: Vec<OverrideView>,
    /// The selectors' choices: the user's own, then an `<optgroup>` per organisation.
    groups: Vec<ConfigurationGroup>,
    pin_conversation_id: String,
    pin_errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "conversations/_table.html")]
struct OverridesFragment {
    csrf_token: String,
    overrides: Vec<OverrideView>,
    groups: Vec<ConfigurationGroup>,
}

fn render_page(user: &SignedIn, data: PageData, pin_conversation_id: String, pin_errors: FieldErrors) -> PageResult {
    let status = if pin_errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = ConversationsPage {
        layout: Layout::signed_in("Conversations", "conversations", user),
        csrf_token: user.csrf_token.clone(),
        overrides: data.overrides,
        groups: grouped_where(&data.configurations, |_| true),
        pin_conversation_id,
        pin_errors,
    };
    Ok(html(status, page.render().map_err(AppError::from)?))
}

pub async fn page(state: web::Data<AppState>, user: SignedIn) -> PageResult {
    let owner = user.user_id;
    let data = state.db.run(move |conn| load(conn, owner)).await?;
    render_page(&user, data, String::new(), FieldErrors::new())
}

#[derive(Deserialize)]
pub struct OverrideFields {
    #[serde(default)]
    configuration_id: String,
}

/// Sets (or, with an empty `configuration_id`, removes) an override.
fn apply(
    conn: &mut Work,
    owner: Uuid,
    conversation: &ConversationId,
    configuration_id: &str,
    cap: UserCap,
) -> Result<(), AppError> {
    let choose = || AppError::validation("configuration_id", "choose one of your configurations");
    let configuration_id = configuration_id.trim();
    if configuration_id.is_empty() {
        return Ok(conversations::remove_override(conn, owner, conversation)?);
    }
    let id = Uuid::parse_str(configuration_id).map_err(|_| choose())?;
    match conversations::set_override(conn, owner, conversation, id, cap) {
        Ok(_) => Ok(()),
        // The form offers the user's own configurations: another id is a wrong choice.
        Err(ConversationsError::NotFound) => Err(choose()),
        // The cap concerns the conversation being pinned: shown beside its field.
        Err(ConversationsError::CapReached(cap)) => Err(AppError::validation("conversation_id", cap.describe())),
        Err(other) => Err(other.into()),
    }
}

/// `POST /conversations/{conversation_id}`: change or remove one override.
pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<OverrideFields>,
) -> PageResult {
    let conversation =
        ConversationId::parse(&path).map_err(|message| AppError::validation("conversation_id", message))?;
    let owner = user.user_id;
    let configuration_id = form.fields.configuration_id;
    let cap = state.settings.caps.overrides;
    let data = state
        .db
        .run(move |conn| {
            apply(conn, owner, &conversation, &configuration_id, cap)?;
            load(conn, owner)
        })
        .await?;
    if !is_htmx(&req) {
        return Ok(see_other(PAGE));
    }
    let fragment = OverridesFragment {
        csrf_token: user.csrf_token.clone(),
        overrides: data.overrides,
        groups: grouped_where(&data.configurations, |_| true),
    };
    Ok(html(StatusCode::OK, fragment.render().map_err(AppError::from)?))
}

#[derive(Deserialize)]
pub struct PinFields {
    #[serde(default)]
    conversation_id: String,
    #[serde(default)]
    configuration_id: String,
}

/// `POST /conversations`: pin a conversation named in the form.
pub async fn pin(state: web::Data<AppState>, user: SignedIn, form: ProtectedForm<PinFields>) -> PageResult {
    let PinFields {
        conversation_id,
        configuration_id,
    } = form.fields;
    let owner = user.user_id;
    let outcome = match ConversationId::parse(conversation_id.trim()) {
        Ok(conversation) => {
            let configuration_id = configuration_id.clone();
            let cap = state.settings.caps.overrides;
            state
                .db
                .run(move |conn| apply(conn, owner, &conversation, &configuration_id, cap))
                .await
        }
        Err(message) => Err(AppError::validation("conversation_id", message)),
    };
    match outcome {
        Ok(()) => Ok(see_other(PAGE)),
        Err(AppError::Validation(errors)) => {
            let data = state.db.run(move |conn| load(conn, owner)).await?;
            render_page(&user, data, conversation_id, errors)
        }
        Err(other) => Err(other.into()),
    }
}
