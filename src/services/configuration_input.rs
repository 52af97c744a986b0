//! A configuration's input before it is parsed, and the one parser for each of its shapes: a new
//! configuration, an update, a test. The page's form, the API's JSON body and an imported file
//! each become a [`ConfigurationInput`] (or a [`TestInput`]) and go through the same parser, so a
//! rule and its message exist once. Every problem is collected by field name: a request hears of
//! all of them at once.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use super::configurations::{ConfigurationUpdate, KeyChange, NewConfiguration, NewConfigurationOnConnection};
use super::connection_tests::TestSubject;
use crate::domain::FieldErrors;
use crate::domain::{ApiKey, BaseUrl, ConfigName, MemberAccess, ModelId, Parameters, PlainHttpHosts, Provider};

/// A field as it arrived: left out, explicitly `null` (only JSON can say that), or a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sent<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

/// The fields of a configuration as sent, for a new configuration or an update.
#[derive(Debug, Default)]
pub struct ConfigurationInput {
    pub name: Sent<String>,
    /// One of the owner's connections, instead of `provider`, `api_key` and `base_url`.
    pub connection_id: Sent<String>,
    pub provider: Sent<String>,
    pub model: Sent<String>,
    /// A secret from the moment it is read: zeroised on drop, redacted in `Debug`.
    pub api_key: Sent<SecretString>,
    pub base_url: Sent<String>,
    pub is_default: Sent<bool>,
    pub is_active: Sent<bool>,
    /// A JSON object of parameters (`Parameters::from_json`); the page builds one from its
    /// inputs. Refusals are named `parameters.<member>`.
    pub parameters: Sent<Value>,
    /// `use` or `reveal`: only an organisation's configuration takes it (the personal routes'
    /// wire types have no such field).
    pub member_access: Sent<String>,
    /// What reading the wire format already refused (unknown or read-only fields, values of the
    /// wrong type); reported together with the rest.
    pub refused: FieldErrors,
}

/// `use` or `reveal`, or why not.
pub fn parse_member_access(raw: &str) -> Result<MemberAccess, String> {
    MemberAccess::parse(raw).ok_or_else(|| "must be `use` or `reveal`".to_owned())
}

/// What a test is asked to test, as sent.
#[derive(Debug, Default)]
pub struct TestInput {
    /// A saved configuration: alone (or with `model`), it is tested as stored; with values
    /// beside it and no key, the values are tested with its stored key.
    pub id: Sent<String>,
    /// A saved connection: only `model` may stand beside it.
    pub connection_id: Sent<String>,
    pub provider: Sent<String>,
    /// Left out: the test lists what the provider offers without looking for a model.
    pub model: Sent<String>,
    pub api_key: Sent<SecretString>,
    pub base_url: Sent<String>,
    pub refused: FieldErrors,
}

/// A provider id, or why not (the message the API, the form and the imports all show).
pub fn parse_provider(raw: &str) -> Result<Provider, String> {
    Provider::parse(raw).ok_or_else(|| {
        format!(
            "unknown provider `{}`; see GET /api/providers",
            raw.chars().take(40).collect::<String>()
        )
    })
}

fn parse_id(raw: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw.trim()).map_err(|_| "must be a UUID".to_owned())
}

fn parse_connection_id(raw: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw.trim()).map_err(|_| "must be a connection id (a UUID)".to_owned())
}

/// The problems found so far, and the readings of single fields that record them.
struct Fields {
    errors: FieldErrors,
}

impl Fields {
    fn parse<T>(&mut self, field: &str, raw: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        parse(raw).map_err(|message| self.errors.add(field, message)).ok()
    }

    /// Sent, and not null.
    fn required<T>(
        &mut self,
        field: &str,
        sent: Sent<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match sent {
            Sent::Value(raw) => self.parse(field, &raw, parse),
            Sent::Null | Sent::Absent => {
                // A value of the wrong type was refused already; one message per problem.
                if !self.errors.has(field) {
                    self.errors.add(field, "is required");
                }
                None
            }
        }
    }

    /// May be left out, but not null.
    fn not_null<T>(
        &mut self,
        field: &str,
        sent: Sent<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match sent {
            Sent::Value(raw) => self.parse(field, &raw, parse),
            Sent::Null => {
                self.errors.add(field, "must not be null");
                None
            }
            Sent::Absent => None,
        }
    }

    /// Left out, null or blank: none.
    fn optional<T>(
        &mut self,
        field: &str,
        sent: Sent<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match sent {
            Sent::Value(raw) if !raw.trim().is_empty() => self.parse(field, &raw, parse),
            _ => None,
        }
    }

    /// A parameters object; refusals are named `parameters.<member>` (`parameters` when it is
    /// not an object).
    fn parameters(&mut self, value: &Value) -> Option<Parameters> {
        Parameters::from_json(value)
            .map_err(|errors| {
                for error in errors {
                    let field = match error.member.as_str() {
                        "" => "parameters".to_owned(),
                        member => format!("parameters.{member}"),
                    };
                    self.errors.add(&field, error.message);
                }
            })
            .ok()
    }

    /// A key to use: left out, null or empty means none.
    fn key(&mut self, sent: Sent<SecretString>) -> Option<ApiKey> {
        match sent {
            Sent::Value(key) if !key.expose_secret().is_empty() => {
                self.parse("api_key", key.expose_secret(), ApiKey::parse)
            }
            _ => None,
        }
    }

    /// `value` when nothing was refused.
    fn finish<T>(self, value: Option<T>) -> Result<T, FieldErrors> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            // Every missing piece recorded an error.
            _ => Err(self.errors),
        }
    }
}

/// A new configuration, the new way or the old.
#[derive(Debug)]
pub enum NewConfigurationInput {
    /// On one of the owner's connections (`connection_id`).
    OnConnection(NewConfigurationOnConnection),
    /// With a connection of its own made from `provider`, `api_key` and `base_url`.
    WithOwnConnection(NewConfiguration),
}

/// The fields that belong to a connection, which a new configuration names either through
/// `connection_id` or by value, never both.
const CONNECTION_FIELDS: [&str; 3] = ["provider", "api_key", "base_url"];

impl ConfigurationInput {
    /// A new configuration, the new way (`connection_id`, with `name`, `model`, `parameters`,
    /// `is_default`, `is_active`) or the old ([`ConfigurationInput::into_new`]); both at once is
    /// refused, naming `connection_id` and each connection field sent beside it.
    pub fn into_create(self, policy: &impl PlainHttpHosts) -> Result<NewConfigurationInput, FieldErrors> {
        if matches!(self.connection_id, Sent::Absent) {
            return self.into_new(policy).map(NewConfigurationInput::WithOwnConnection);
        }
        let mut fields = Fields { errors: self.refused };
        let sent_beside: Vec<&str> = CONNECTION_FIELDS
            .into_iter()
            .zip([
                !matches!(self.provider, Sent::Absent),
                !matches!(self.api_key, Sent::Absent),
                !matches!(self.base_url, Sent::Absent),
            ])
            .filter_map(|(field, sent)| sent.then_some(field))
            .collect();
        if !sent_beside.is_empty() {
            let message =
                "give either connection_id or provider, api_key and base_url (a connection of its own), not both";
            fields.errors.add("connection_id", message);
            for field in sent_beside {
                fields.errors.add(field, message);
            }
        }
        let name = fields.required("name", self.name, ConfigName::parse);
        let connection_id = fields.required("connection_id", self.connection_id, parse_connection_id);
        let model = fields.required("model", self.model, ModelId::parse);
        let is_default = matches!(self.is_default, Sent::Value(true));
        let is_active = !matches!(self.is_active, Sent::Value(false));
        let member_access = fields
            .not_null("member_access", self.member_access, parse_member_access)
            .unwrap_or_default();
        let parameters = match &self.parameters {
            Sent::Value(value) => fields.parameters(value),
            Sent::Absent | Sent::Null => Some(Parameters::default()),
        };
        let parsed = match (name, connection_id, model, parameters) {
            (Some(name), Some(connection_id), Some(model), Some(parameters)) => {
                Some(NewConfigurationInput::OnConnection(NewConfigurationOnConnection {
                    name,
                    connection_id,
                    model,
                    is_default,
                    is_active,
                    parameters,
                    member_access,
                }))
            }
            _ => None,
        };
        fields.finish(parsed)
    }

    /// A new configuration: `name`, `provider` and `model` required; no key, no base URL and no
    /// default unless sent; active unless sent `false`.
    pub fn into_new(self, policy: &impl PlainHttpHosts) -> Result<NewConfiguration, FieldErrors> {
        let mut fields = Fields { errors: self.refused };
        let name = fields.required("name", self.name, ConfigName::parse);
        let provider = fields.required("provider", self.provider, parse_provider);
        let model = fields.required("model", self.model, ModelId::parse);
        let api_key = fields.key(self.api_key);
        let base_url = fields.optional("base_url", self.base_url, |raw| BaseUrl::parse(raw, policy));
        let is_default = matches!(self.is_default, Sent::Value(true));
        let is_active = !matches!(self.is_active, Sent::Value(false));
        let member_access = fields
            .not_null("member_access", self.member_access, parse_member_access)
            .unwrap_or_default();
        let parameters = match &self.parameters {
            Sent::Value(value) => fields.parameters(value),
            Sent::Absent | Sent::Null => Some(Parameters::default()),
        };
        let parsed = match (name, provider, model, parameters) {
            (Some(name), Some(provider), Some(model), Some(parameters)) => Some(NewConfiguration {
                name,
                provider,
                model,
                api_key,
                base_url,
                is_default,
                is_active,
                parameters,
                member_access,
            }),
            _ => None,
        };
        fields.finish(parsed)
    }

    /// A partial update: what is left out stays. A null or left-out `api_key` keeps the stored
    /// key and `""` removes it; a null or blank `base_url` goes back to the provider's default.
    /// Parameters sent replace the stored ones as a whole (`null`: none). The default is not
    /// changed by an update (set-default does that).
    pub fn into_update(self, policy: &impl PlainHttpHosts) -> Result<ConfigurationUpdate, FieldErrors> {
        let mut fields = Fields { errors: self.refused };
        if !matches!(self.is_default, Sent::Absent) {
            fields.errors.add("is_default", "is read-only");
        }
        let name = fields.not_null("name", self.name, ConfigName::parse);
        let connection_id = fields.not_null("connection_id", self.connection_id, parse_connection_id);
        let provider = fields.not_null("provider", self.provider, parse_provider);
        let model = fields.not_null("model", self.model, ModelId::parse);
        let api_key = match self.api_key {
            Sent::Absent | Sent::Null => KeyChange::Keep,
            Sent::Value(key) if key.expose_secret().is_empty() => KeyChange::Remove,
            Sent::Value(key) => fields
                .parse("api_key", key.expose_secret(), ApiKey::parse)
                .map_or(KeyChange::Keep, KeyChange::Replace),
        };
        let base_url = match self.base_url {
            Sent::Absent => None,
            Sent::Null => Some(None),
            Sent::Value(url) if url.trim().is_empty() => Some(None),
            Sent::Value(url) => fields
                .parse("base_url", &url, |raw| BaseUrl::parse(raw, policy))
                .map(Some),
        };
        let is_active = match self.is_active {
            Sent::Value(active) => Some(active),
            Sent::Null => {
                fields.errors.add("is_active", "must be true or false");
                None
            }
            Sent::Absent => None,
        };
        let parameters = match &self.parameters {
            Sent::Value(value) => fields.parameters(value),
            Sent::Null => Some(Parameters::default()),
            Sent::Absent => None,
        };
        let member_access = fields.not_null("member_access", self.member_access, parse_member_access);
        fields.finish(Some(ConfigurationUpdate {
            name,
            connection_id,
            provider,
            model,
            api_key,
            base_url,
            is_active,
            parameters,
            member_access,
        }))
    }
}

impl TestInput {
    /// A saved configuration (`id` alone), edited values tested with a saved configuration's key
    /// (`id` and values, no key), or values saved nowhere (`provider` required).
    pub fn parse(self, policy: &impl PlainHttpHosts) -> Result<TestSubject, FieldErrors> {
        let mut fields = Fields { errors: self.refused };
        if !matches!(self.connection_id, Sent::Absent) {
            for (field, sent) in [
                ("id", !matches!(self.id, Sent::Absent)),
                ("provider", !matches!(self.provider, Sent::Absent)),
                ("api_key", !matches!(self.api_key, Sent::Absent)),
                ("base_url", !matches!(self.base_url, Sent::Absent)),
            ] {
                if sent {
                    fields
                        .errors
                        .add(field, "only `model` may be given beside `connection_id`");
                }
            }
            let id = fields.required("connection_id", self.connection_id, parse_connection_id);
            let model = fields.not_null("model", self.model, ModelId::parse);
            return fields.finish(id.map(|id| TestSubject::Connection { id, model }));
        }
        let id_sent = !matches!(self.id, Sent::Absent);
        let id = match self.id {
            Sent::Absent => None,
            other => fields.required("id", other, parse_id),
        };
        if id_sent && matches!(self.provider, Sent::Absent) {
            let model = fields.not_null("model", self.model, ModelId::parse);
            return fields.finish(id.map(|id| TestSubject::Saved { id, model }));
        }
        let provider = fields.required("provider", self.provider, parse_provider);
        let model = match self.model {
            Sent::Absent => None,
            other => fields.required("model", other, ModelId::parse),
        };
        let api_key = fields.key(self.api_key);
        let base_url = fields.optional("base_url", self.base_url, |raw| BaseUrl::parse(raw, policy));
        let subject = provider.map(|provider| match (id, api_key) {
            (Some(id), None) => TestSubject::EditedWithStoredKey {
                id,
                provider,
                model,
                base_url,
            },
            (_, api_key) => TestSubject::Values {
                provider,
                model,
                base_url,
                api_key,
            },
        });
        fields.finish(subject)
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;

    struct HttpsOnly;

    impl PlainHttpHosts for HttpsOnly {
        fn allows_plain_http(&self, _: &Url) -> bool {
            false
        }
    }

    fn value(text: &str) -> Sent<String> {
        Sent::Value(text.to_owned())
    }

    #[test]
    fn a_new_configuration_reports_every_problem_at_once() {
        let input = ConfigurationInput {
            name: value(""),
            provider: value("OpenAI"),
            model: Sent::Null,
            api_key: Sent::Value(SecretString::from("short")),
            base_url: value("http://llm.example.com"),
            ..ConfigurationInput::default()
        };
        let errors = input.into_new(&HttpsOnly).unwrap_err();
        let named: Vec<&str> = errors.iter().map(|(field, _)| field).collect();
        assert_eq!(named, ["api_key", "base_url", "model", "name", "provider"]);
        assert_eq!(errors.of("model"), ["is required"]);
    }

    #[test]
    fn an_update_keeps_what_is_left_out_and_refuses_nulls() {
        let update = ConfigurationInput {
            api_key: Sent::Value(SecretString::from("")),
            base_url: Sent::Null,
            ..ConfigurationInput::default()
        }
        .into_update(&HttpsOnly)
        .unwrap();
        assert!(update.name.is_none() && update.is_active.is_none());
        assert!(matches!(update.api_key, KeyChange::Remove));
        assert_eq!(update.base_url, Some(None));

        let errors = ConfigurationInput {
            name: Sent::Null,
            is_active: Sent::Null,
            is_default: Sent::Value(true),
            ..ConfigurationInput::default()
        }
        .into_update(&HttpsOnly)
        .unwrap_err();
        assert_eq!(errors.of("name"), ["must not be null"]);
        assert!(errors.has("is_active") && errors.has("is_default"));
    }

    #[test]
    fn a_test_is_of_a_saved_configuration_its_edited_values_or_plain_values() {
        let id = Uuid::now_v7();
        let saved = TestInput {
            id: value(&id.to_string()),
            ..TestInput::default()
        };
        assert!(matches!(saved.parse(&HttpsOnly), Ok(TestSubject::Saved { id: tested, model: None }) if tested == id));

        let edited = TestInput {
            id: value(&id.to_string()),
            provider: value("openai"),
            ..TestInput::default()
        };
        assert!(matches!(
            edited.parse(&HttpsOnly),
            Ok(TestSubject::EditedWithStoredKey { model: None, .. })
        ));

        let values = TestInput {
            id: value(&id.to_string()),
            provider: value("openai"),
            model: value("gpt-4o"),
            api_key: Sent::Value(SecretString::from("sk-test-0123456789")),
            ..TestInput::default()
        };
        assert!(matches!(
            values.parse(&HttpsOnly),
            Ok(TestSubject::Values {
                api_key: Some(_),
                model: Some(_),
                ..
            })
        ));

        let errors = TestInput {
            id: value("not-a-uuid"),
            ..TestInput::default()
        }
        .parse(&HttpsOnly)
        .unwrap_err();
        assert_eq!(errors.of("id"), ["must be a UUID"]);
        assert!(!errors.has("provider"), "an id alone needs no provider");
    }
}
