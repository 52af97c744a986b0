//! Ollama: `GET {base}/api/tags`, no key. Models are listed as `models[].name`.

pub const PATH: &str = "/api/tags";

pub fn model_ids(value: &serde_json::Value) -> Option<Vec<String>> {
    let models = value.get("models")?.as_array()?;
    Some(
        models
            .iter()
            .filter_map(|model| model.get("name")?.as_str().map(str::to_owned))
            .collect(),
    )
}
