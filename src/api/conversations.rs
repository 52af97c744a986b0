//! `/api/conversations` (per-conversation overrides) and `GET /api/resolve`.

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::configurations::ConfigurationResource;
use super::extract::FieldReader;
use super::wire::{Rfc3339, json_array, json_ok};
use crate::domain::{ConversationId, ConversationOverride, MemberRef, Parameters, Scope, TestStatus};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::api_error::{ApiResult, ErrorBody, invalid_query};
use crate::http::waiting_requests::take_read_ahead;
use crate::http::{Caller, JsonObject};
use crate::services::conversations::{self, Requester, Resolution};
use crate::services::resolve_waits::{self, Subscription};
use crate::services::{Authenticated, Credential};

#[derive(Debug, Serialize, ToSchema)]
pub struct OverrideResource {
    pub conversation_id: String,
    pub configuration_id: uuid::Uuid,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Rfc3339,
}

impl From<ConversationOverride> for OverrideResource {
    fn from(row: ConversationOverride) -> Self {
        OverrideResource {
            conversation_id: row.conversation_id,
            configuration_id: row.configuration_id,
            updated_at: Rfc3339(row.updated_at),
        }
    }
}

/// The body of `PUT /api/conversations/{conversation_id}/llm-configuration`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `set_override` reads it field by field
pub struct SetOverrideRequest {
    #[schema(format = Uuid)]
    configuration_id: String,
}

fn conversation_id(raw: &str) -> Result<ConversationId, AppError> {
    ConversationId::parse(raw).map_err(|message| AppError::validation("conversation_id", message))
}

#[utoipa::path(
    get, path = "/api/conversations", tag = "conversations",
    description = "The caller's per-conversation overrides. Scope: `read`.",
    responses((status = 200, body = [OverrideResource]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let body = caller
        .run(&state.db, Scope::Read, |conn, principal| {
            let rows = conversations::list(conn, principal.user_id)?;
            let resources: Vec<_> = rows.into_iter().map(OverrideResource::from).collect();
            json_array(&resources, 160)
        })
        .await?;
    Ok(json_ok(body))
}

#[utoipa::path(
    put, path = "/api/conversations/{conversation_id}/llm-configuration", tag = "conversations",
    description = "Pin a conversation to one of the caller's configurations. Scope: `write`.",
    params(("conversation_id" = String, Path, description = "The runtime's conversation id (1 to 200 printable characters)")),
    request_body = SetOverrideRequest,
    responses(
        (status = 200, body = OverrideResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_override(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let mut reader = FieldReader::new(body.0, &["configuration_id"], &["conversation_id", "updated_at"]);
    let configuration_id = reader.required_string("configuration_id");
    let configuration_id = reader.parsed("configuration_id", configuration_id, |raw| {
        uuid::Uuid::parse_str(raw).map_err(|_| "must be a configuration id (UUID)".to_owned())
    });
    let conversation = ConversationId::parse(&path)
        .map_err(|message| reader.errors.add("conversation_id", message))
        .ok();
    let errors = reader.errors.clone();
    reader.finish()?;
    let (Some(conversation), Some(configuration_id)) = (conversation, configuration_id) else {
        return Err(AppError::Validation(errors).into());
    };
    let cap = state.settings.caps.overrides;
    let row = caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(conversations::set_override(
                conn,
                principal.user_id,
                &conversation,
                configuration_id,
                cap,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(OverrideResource::from(row)))
}

#[utoipa::path(
    delete, path = "/api/conversations/{conversation_id}/llm-configuration", tag = "conversations",
    description = "Remove a conversation's override (204 also when there was none). Scope: `write`.",
    params(("conversation_id" = String, Path, description = "The runtime's conversation id")),
    responses(
        (status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove_override(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let conversation = conversation_id(&path)?;
    caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(conversations::remove_override(conn, principal.user_id, &conversation)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A resolved configuration: the resource's fields plus the key in clear. For the instance
/// fallback `id` is null and `name` is `instance fallback`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResolvedConfiguration {
    pub id: Option<uuid::Uuid>,
    /// The connection the key was read through; `null` for the instance fallback.
    pub connection_id: Option<uuid::Uuid>,
    pub name: String,
    pub provider: String,
    pub model: String,
    /// As stored: `null` means the provider's default.
    pub base_url: Option<String>,
    /// Where requests go: `base_url` or the provider's default.
    pub effective_base_url: Option<String>,
    /// The key in clear: this is the one response that carries it.
    #[serde(serialize_with = "super::wire::expose_secret")]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<SecretString>,
    pub api_key_masked: Option<String>,
    pub has_api_key: bool,
    pub is_default: bool,
    pub is_active: bool,
    pub test_status: String,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub tested_at: Option<Rfc3339>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Rfc3339>,
    pub use_count: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<Rfc3339>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Rfc3339>,
    /// Passed to the runtime with the configuration; `{}` when none is set.
    pub parameters: Parameters,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResolveResponse {
    /// `override`, `default`, `organisation_default` (a service token only) or `fallback`.
    pub source: String,
    pub configuration: ResolvedConfiguration,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ResolveQuery {
    /// The conversation whose override applies, if any.
    conversation_id: Option<String>,
    /// With an organisation's service token (required then): the member to resolve for, by
    /// e-mail or user id; anyone who is not an active member gets 403 `forbidden`. Refused (422)
    /// with a personal token.
    user: Option<String>,
    /// With `If-None-Match` only: while the tag is current, wait up to this many seconds (1 to
    /// 60) for a change, answering 200 as soon as the answer changes, else 304 at the end. At
    /// most 100 requests of one token wait at once (429 beyond).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 60)]
    wait: Option<String>,
}

#[utoipa::path(
    get, path = "/api/resolve", tag = "conversations",
    description = "The configuration a conversation uses, key included: its override if active, else the \
                   default, else the instance fallback. Records the use and an audit entry. Scope: `resolve` \
                   (API tokens only). With an organisation's service token, for the member named by `user`: \
                   the member's override, else their default, else the organisation's default, else the \
                   instance fallback, taking only what the organisation's policy lets count (`source` \
                   `organisation_default` for its default). With `If-None-Match` and `wait`, an unchanged \
                   answer waits for a change made through any instance (200 as soon as there is one), \
                   else 304 at the end.",
    params(
        ResolveQuery,
        ("If-None-Match" = Option<String>, Header,
            description = "The `ETag` of an earlier answer: 304 without a body while it is still current"),
    ),
    responses(
        (status = 200, body = ResolveResponse, headers(("ETag" = String, description = "covers what a runtime acts on"))),
        (status = 304, description = "`If-None-Match` holds the current tag: no body, nothing revealed or recorded",
            headers(("ETag" = String))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "`wait`: this token has 100 requests waiting already", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub fn resolve(req: HttpRequest) -> LocalBoxFuture<'static, ApiResult<HttpResponse>> {
    // Neither an `async fn` nor extractors: everything is read from the request now, and a
    // waiting request holds only the future below, for up to a minute and thousands at once,
    // without extractors' state or its arguments twice over (BENCHMARKS.md, waiting resolves).
    let ResolveRequest {
        state,
        caller,
        asked,
        wait,
    } = match take_read_ahead(&req).unwrap_or_else(|| read_resolve_request(&req)) {
        Ok(read) => read,
        Err(error) => return Box::pin(std::future::ready(Err(error.into()))),
    };
    Box::pin(async move {
        let Some(wait) = wait else {
            let (resolution, _) = Box::pin(resolve_once(&state, caller, asked, false)).await?;
            return Ok(answer(resolution));
        };
        let deadline = tokio::time::Instant::now() + wait;
        let (mut resolution, waiting) = Box::pin(resolve_once(&state, caller.clone(), asked.clone(), true)).await?;
        let Some(mut waiting) = waiting else {
            return Ok(answer(resolution));
        };
        let mut place = None;
        while let Resolution::NotModified { .. } = resolution {
            if place.is_none() {
                place = Some(
                    state
                        .resolve_waits
                        .hold_place(waiting.token)
                        .ok_or(AppError::RateLimited { retry_after_secs: 1 })?,
                );
            }
            let woken = waiting.subscription.changed_before(deadline).await;
            // Woken or not, the answer comes from a full resolve: token, user and membership are
            // checked again, and a change that turns out not to matter keeps the request waiting.
            resolution = Box::pin(resolve_once(&state, caller.clone(), asked.clone(), false))
                .await?
                .0;
            if !woken {
                break;
            }
        }
        Ok(answer(resolution))
    })
}

/// What a waiting request waits with: its subscription, and whose places it takes (its token's,
/// or its user's for a session).
struct Waiting {
    subscription: Subscription,
    token: uuid::Uuid,
}

/// Reads a resolve request: for `ReadAhead` (a request that may wait, read before its headers
/// are dropped) and for the handler (every other).
pub fn read_resolve_request(req: &HttpRequest) -> Result<ResolveRequest, AppError> {
    ResolveRequest::read(req)
}

/// A resolve request, read: the application, the caller, what is asked, how long it may wait.
pub struct ResolveRequest {
    state: web::Data<AppState>,
    caller: Caller,
    asked: Arc<Asked>,
    wait: Option<std::time::Duration>,
}

impl ResolveRequest {
    /// Read in the order extractors would (a missing credential's 401 before a bad query's 400).
    fn read(req: &HttpRequest) -> Result<Self, AppError> {
        let state = req
            .app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| AppError::Internal("the application state is missing".into()))?;
        let caller = Caller::from_request(req, &mut Payload::None)
            .into_inner()
            .map_err(|error| error.0)?;
        let query = web::Query::<ResolveQuery>::from_query(req.query_string())
            .map_err(|error| invalid_query(&error))?
            .into_inner();
        let (asked, wait) = Asked::read(req, query)?;
        Ok(ResolveRequest {
            state,
            caller,
            asked,
            wait,
        })
    }
}

/// What a resolve asks for, kept for the resolves a waiting request makes again.
struct Asked {
    conversation: Option<ConversationId>,
    member: Option<MemberRef>,
    if_none_match: Vec<String>,
}

impl Asked {
    /// The request's conversation, member and tags, and how long it may wait.
    fn read(req: &HttpRequest, query: ResolveQuery) -> Result<(Arc<Asked>, Option<std::time::Duration>), AppError> {
        let conversation = query.conversation_id.map(|raw| conversation_id(&raw)).transpose()?;
        let member = query
            .user
            .filter(|raw| !raw.trim().is_empty())
            .map(|raw| MemberRef::parse(&raw));
        let if_none_match = entity_tags(req);
        let wait = waiting_time(query.wait.as_deref(), !if_none_match.is_empty())?;
        let asked = Asked {
            conversation,
            member,
            if_none_match,
        };
        Ok((Arc::new(asked), wait))
    }
}

/// `wait`: whole seconds from 1 to 60, and only with `If-None-Match` (a wait needs an answer
/// the runtime already holds).
fn waiting_time(raw: Option<&str>, conditional: bool) -> Result<Option<std::time::Duration>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    let seconds = raw
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|seconds| (1..=60).contains(seconds))
        .ok_or_else(|| AppError::validation("wait", "must be a whole number of seconds from 1 to 60"))?;
    if !conditional {
        return Err(AppError::validation(
            "wait",
            "waits only with If-None-Match: send the ETag of the answer you hold",
        ));
    }
    Ok(Some(std::time::Duration::from_secs(seconds)))
}

/// One resolve, with every check, in one database task; with `subscribe`, also the
/// subscription to the changes of the answer's user (taken before the resolve reads, so that a
/// change committed after it is heard) and whose places the wait takes (the token's).
///
/// Callers box it: a waiting request holds `resolve`'s future for up to a minute, thousands at
/// once, and inline this future (the database task and its captures) would make every one of
/// them a kilobyte larger for all that time (BENCHMARKS.md, waiting resolves).
async fn resolve_once(
    state: &AppState,
    caller: Caller,
    asked: Arc<Asked>,
    subscribe: bool,
) -> Result<(Resolution, Option<Waiting>), AppError> {
    let keyring = state.keyring.clone();
    let tags = state.resolve_tags.clone();
    let waits = state.resolve_waits.clone();
    let fallback = state.settings.fallback.clone();
    let (pending, waiting) = state
        .db
        .run(move |conn| {
            // Authorised first: a runtime's tag is compared only for a caller who may resolve.
            let authenticated = caller.authorize_any(conn, Scope::Resolve)?;
            let condition = conversations::Condition {
                tags: tags.get(conn, &keyring)?,
                if_none_match: &asked.if_none_match,
            };
            match authenticated {
                Authenticated::Service(service) => {
                    let member = asked.member.as_ref().ok_or_else(|| {
                        AppError::validation("user", "name the member to resolve for (e-mail or user id)")
                    })?;
                    let waiting = if subscribe {
                        let user = resolve_waits::member_id(conn, service.organisation_id, member)?;
                        Some(Waiting {
                            subscription: waits.subscribe(user),
                            token: service.token_id,
                        })
                    } else {
                        None
                    };
                    let pending = conversations::resolve_for_member(
                        conn,
                        &keyring,
                        &service,
                        member,
                        asked.conversation.as_ref(),
                        fallback.as_ref(),
                        &condition,
                    )?;
                    Ok((pending, waiting))
                }
                Authenticated::User(principal) => {
                    if asked.member.is_some() {
                        return Err(AppError::validation(
                            "user",
                            "only an organisation's service token resolves for another user",
                        ));
                    }
                    let token_id = match &principal.credential {
                        Credential::Token { id, .. } => Some(*id),
                        Credential::Session => None,
                    };
                    let waiting = subscribe.then(|| Waiting {
                        subscription: waits.subscribe(Some(principal.user_id)),
                        token: token_id.unwrap_or(principal.user_id),
                    });
                    let requester = Requester {
                        user_id: principal.user_id,
                        token_id,
                    };
                    let pending = conversations::resolve(
                        conn,
                        &keyring,
                        &requester,
                        asked.conversation.as_ref(),
                        fallback.as_ref(),
                        &condition,
                    )?;
                    Ok((pending, waiting))
                }
            }
        })
        .await?;
    // The answer leaves only once its use and its audit lines are committed.
    let resolution = pending.record(&state.resolve_journal).await?;
    Ok((resolution, waiting))
}

/// The answer to a resolution: 200 with the configuration and its key, or 304.
fn answer(resolution: Resolution) -> HttpResponse {
    let (resolved, tag) = match resolution {
        Resolution::Fresh { resolved, tag } => (*resolved, tag),
        Resolution::NotModified { tag } => {
            return HttpResponse::NotModified()
                .insert_header((header::ETAG, tag))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
    };
    let effective_base_url = resolved
        .base_url
        .clone()
        .or_else(|| resolved.provider.default_base_url().map(str::to_owned));
    let api_key = resolved.api_key;
    let configuration = match resolved.configuration {
        Some(row) => {
            let resource = ConfigurationResource::from(row);
            ResolvedConfiguration {
                id: Some(resource.id),
                connection_id: Some(resource.connection_id),
                name: resource.name,
                provider: resource.provider.to_owned(),
                model: resource.model,
                base_url: resource.base_url,
                effective_base_url,
                api_key,
                api_key_masked: resource.api_key_masked,
                has_api_key: resource.has_api_key,
                is_default: resource.is_default,
                is_active: resource.is_active,
                test_status: resource.test_status.to_owned(),
                test_message: resource.test_message,
                test_latency_ms: resource.test_latency_ms,
                tested_at: resource.tested_at,
                last_used_at: resource.last_used_at,
                use_count: resource.use_count,
                created_at: Some(resource.created_at),
                updated_at: Some(resource.updated_at),
                parameters: resource.parameters,
            }
        }
        None => ResolvedConfiguration {
            id: None,
            connection_id: None,
            name: "instance fallback".to_owned(),
            provider: resolved.provider.id().to_owned(),
            model: resolved.model,
            base_url: resolved.base_url,
            effective_base_url,
            has_api_key: api_key.is_some(),
            api_key,
            api_key_masked: resolved.api_key_masked,
            is_default: false,
            is_active: true,
            test_status: TestStatus::Untested.as_str().to_owned(),
            test_message: None,
            test_latency_ms: None,
            tested_at: None,
            last_used_at: None,
            use_count: 0,
            created_at: None,
            updated_at: None,
            parameters: Parameters::default(),
        },
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ETAG, tag))
        .json(ResolveResponse {
            source: resolved.source.as_str().to_owned(),
            configuration,
        })
}

/// The entity tags of `If-None-Match` (a list; weak tags compare by their opaque part, as
/// RFC 9110 has `If-None-Match` do), or none.
fn entity_tags(req: &HttpRequest) -> Vec<String> {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .map(|tag| tag.strip_prefix("W/").unwrap_or(tag))
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect()
}
