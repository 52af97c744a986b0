// Written by hand for both backends: id columns use the custom `DbUuid` type (see sql_types.rs).

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    users (id) {
        id -> DbUuid,
        email -> Text,
        email_key -> Text,
        password_hash -> Text,
        role -> Text,
        is_disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        listing_version -> BigInt,
        oidc_subject -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    api_tokens (id) {
        id -> DbUuid,
        user_id -> DbUuid,
        name -> Text,
        scopes -> Text,
        token_hash -> Binary,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        is_revoked -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    llm_configurations (id) {
        id -> DbUuid,
        /// The owner: a user, or (`organisation_id`) an organisation; exactly one of the two.
        user_id -> Nullable<DbUuid>,
        connection_id -> DbUuid,
        name -> Text,
        name_key -> Text,
        model -> Text,
        is_active -> Bool,
        last_used_at -> Nullable<Timestamp>,
        use_count -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        parameters -> Text,
        model_listed -> Bool,
        organisation_id -> Nullable<DbUuid>,
        /// What members may do with an organisation's key: `use` or `reveal`.
        member_access -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    connections (id) {
        id -> DbUuid,
        /// The owner: a user, or (`organisation_id`) an organisation; exactly one of the two.
        owner_user_id -> Nullable<DbUuid>,
        name -> Text,
        name_key -> Text,
        provider -> Text,
        base_url -> Nullable<Text>,
        api_key_encrypted -> Nullable<Binary>,
        key_id -> Nullable<Text>,
        api_key_hint -> Nullable<Text>,
        legacy_configuration_id -> Nullable<DbUuid>,
        test_status -> Text,
        test_code -> Nullable<Text>,
        test_message -> Nullable<Text>,
        test_latency_ms -> Nullable<BigInt>,
        tested_at -> Nullable<Timestamp>,
        models_fetched_at -> Nullable<Timestamp>,
        model_count -> BigInt,
        is_implicit -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        next_check_at -> Nullable<Timestamp>,
        check_claimed_at -> Nullable<Timestamp>,
        check_failures -> BigInt,
        expires_at -> Nullable<Timestamp>,
        organisation_id -> Nullable<DbUuid>,
        expiry_notice -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    connection_checks (id) {
        id -> DbUuid,
        connection_id -> DbUuid,
        checked_at -> Timestamp,
        trigger -> Text,
        status -> Text,
        code -> Text,
        latency_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    connection_models (connection_id, model) {
        connection_id -> DbUuid,
        model -> Text,
    }
}

diesel::table! {
    master_key_canaries (key_id) {
        key_id -> Text,
        canary -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    instance_settings (name) {
        name -> Text,
        value -> Text,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(llm_configurations -> users (user_id));
diesel::joinable!(llm_configurations -> connections (connection_id));
diesel::joinable!(connections -> users (owner_user_id));
diesel::joinable!(connection_models -> connections (connection_id));
diesel::joinable!(connection_checks -> connections (connection_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_tokens,
    llm_configurations,
    master_key_canaries,
    instance_settings,
    connections,
    connection_models,
    connection_checks,
);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    sessions (key_hash) {
        key_hash -> Binary,
        user_id -> Nullable<DbUuid>,
        state -> Text,
        created_at -> Timestamp,
        refreshed_at -> Timestamp,
        idle_expires_at -> Timestamp,
        absolute_expires_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    auth_failures (id) {
        id -> DbUuid,
        account_key -> Text,
        client_address -> Text,
        failed_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(sessions, users);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    provider_test_runs (id) {
        id -> DbUuid,
        user_id -> DbUuid,
        started_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    conversation_overrides (user_id, conversation_id) {
        user_id -> DbUuid,
        conversation_id -> Text,
        configuration_id -> DbUuid,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    key_reveals (id) {
        id -> DbUuid,
        user_id -> DbUuid,
        token_id -> Nullable<DbUuid>,
        configuration_id -> Nullable<DbUuid>,
        configuration_name -> Text,
        conversation_id -> Nullable<Text>,
        source -> Text,
        revealed_at -> Timestamp,
    }
}

diesel::joinable!(conversation_overrides -> llm_configurations (configuration_id));
diesel::allow_tables_to_appear_in_same_query!(conversation_overrides, llm_configurations);
diesel::joinable!(key_reveals -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(key_reveals, users);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    security_events (id) {
        id -> DbUuid,
        user_id -> DbUuid,
        event -> Text,
        actor_id -> Nullable<DbUuid>,
        actor -> Text,
        sessions_ended -> BigInt,
        tokens_revoked -> BigInt,
        occurred_at -> Timestamp,
    }
}

diesel::joinable!(security_events -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(security_events, users);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    organisations (id) {
        id -> DbUuid,
        name -> Text,
        name_key -> Text,
        allow_personal_configurations -> Bool,
        default_configuration_id -> Nullable<DbUuid>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        managed -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    memberships (organisation_id, user_id) {
        organisation_id -> DbUuid,
        user_id -> DbUuid,
        role -> Text,
        share_personal_configurations -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        from_single_sign_on -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    invitations (id) {
        id -> DbUuid,
        organisation_id -> DbUuid,
        email -> Text,
        email_key -> Text,
        role -> Text,
        invited_by -> Nullable<DbUuid>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(memberships -> organisations (organisation_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(invitations -> organisations (organisation_id));
diesel::allow_tables_to_appear_in_same_query!(organisations, memberships, invitations, users);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    /// Each user's default configuration (their own, or an organisation's): one per user.
    user_defaults (user_id) {
        user_id -> DbUuid,
        configuration_id -> DbUuid,
    }
}

diesel::joinable!(user_defaults -> llm_configurations (configuration_id));
diesel::allow_tables_to_appear_in_same_query!(user_defaults, llm_configurations);
diesel::allow_tables_to_appear_in_same_query!(user_defaults, connections);
diesel::allow_tables_to_appear_in_same_query!(user_defaults, users);
diesel::allow_tables_to_appear_in_same_query!(user_defaults, organisations);
diesel::allow_tables_to_appear_in_same_query!(user_defaults, memberships);
diesel::allow_tables_to_appear_in_same_query!(user_defaults, conversation_overrides);
diesel::allow_tables_to_appear_in_same_query!(organisations, llm_configurations);
diesel::allow_tables_to_appear_in_same_query!(organisations, connections);
diesel::allow_tables_to_appear_in_same_query!(memberships, llm_configurations);
diesel::allow_tables_to_appear_in_same_query!(memberships, connections);
diesel::allow_tables_to_appear_in_same_query!(organisations, conversation_overrides);
diesel::allow_tables_to_appear_in_same_query!(memberships, conversation_overrides);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    webhooks (id) {
        id -> DbUuid,
        owner_user_id -> Nullable<DbUuid>,
        owner_organisation_id -> Nullable<DbUuid>,
        url -> Text,
        events -> Text,
        description -> Text,
        is_active -> Bool,
        secret_encrypted -> Binary,
        key_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    webhook_deliveries (id) {
        id -> DbUuid,
        webhook_id -> DbUuid,
        event_id -> Text,
        event_type -> Text,
        body -> Text,
        attempts -> BigInt,
        state -> Text,
        next_attempt_at -> Nullable<Timestamp>,
        claimed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    webhook_attempts (id) {
        id -> DbUuid,
        webhook_id -> DbUuid,
        delivery_id -> DbUuid,
        event_id -> Text,
        event_type -> Text,
        attempt -> BigInt,
        status_code -> Nullable<BigInt>,
        error -> Nullable<Text>,
        attempted_at -> Timestamp,
    }
}

diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(webhook_attempts -> webhooks (webhook_id));
diesel::allow_tables_to_appear_in_same_query!(webhooks, webhook_deliveries, webhook_attempts, memberships);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    /// An organisation's `lny_` tokens (scopes `read`, `resolve`), stored as SHA-256 hashes.
    service_tokens (id) {
        id -> DbUuid,
        organisation_id -> DbUuid,
        created_by -> Nullable<DbUuid>,
        name -> Text,
        scopes -> Text,
        token_hash -> Binary,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        is_revoked -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    second_factors (user_id) {
        user_id -> DbUuid,
        secret_encrypted -> Binary,
        key_id -> Text,
        last_used_step -> BigInt,
        enabled_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    recovery_codes (id) {
        id -> DbUuid,
        user_id -> DbUuid,
        code_hash -> Binary,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    login_challenges (token_hash) {
        token_hash -> Binary,
        user_id -> DbUuid,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    /// An organisation's audit: each reveal through its service tokens, and each of its
    /// configurations revealed by a member's own token.
    organisation_reveals (id) {
        id -> DbUuid,
        organisation_id -> DbUuid,
        token_id -> DbUuid,
        token_name -> Text,
        member_id -> Nullable<DbUuid>,
        configuration_id -> Nullable<DbUuid>,
        configuration_name -> Text,
        revealed_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::sql_types::DbUuid;

    second_factor_failures (id) {
        id -> DbUuid,
        user_id -> DbUuid,
        failed_at -> Timestamp,
    }
}

diesel::joinable!(service_tokens -> organisations (organisation_id));
diesel::joinable!(organisation_reveals -> organisations (organisation_id));
diesel::joinable!(organisation_reveals -> users (member_id));
diesel::allow_tables_to_appear_in_same_query!(service_tokens, organisations);
diesel::allow_tables_to_appear_in_same_query!(service_tokens, users);
diesel::allow_tables_to_appear_in_same_query!(organisation_reveals, organisations);
diesel::allow_tables_to_appear_in_same_query!(organisation_reveals, users);
diesel::allow_tables_to_appear_in_same_query!(service_tokens, organisation_reveals);

diesel::joinable!(second_factors -> users (user_id));
diesel::joinable!(login_challenges -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(second_factors, users);
diesel::allow_tables_to_appear_in_same_query!(second_factors, sessions);

diesel::table! {
    single_sign_on_states (state_hash) {
        state_hash -> Binary,
        expires_at -> Timestamp,
    }
}
