//! The OpenAI-compatible transport (the only module that imports `async-openai`): the
//! embeddings endpoint as an [`Embedder`], and the chat client the LLM judge sends its
//! requests through ([`chat::LlmClient`]: retries, backoff, token and cost accounting). What
//! the judge asks and how it reads the answer live in `judge/llm.rs`.

pub mod chat;

pub use chat::{LlmClient, LlmError, LlmStats};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::embeddings::{CreateEmbeddingRequestArgs, EmbeddingInput};
use futures::future::BoxFuture;
use secrecy::ExposeSecret;

use crate::config::{EmbeddingSettings, LlmSettings};
use crate::embed::{EmbedError, Embedder, normalize};

/// The default endpoint when only an API key is configured.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// reqwest is built without a default TLS provider (to avoid a C build of aws-lc); use ring,
/// which tonic already brings.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client for the endpoint, with the configured timeout. A client that cannot be
/// built is an error: falling back to a default client would silently drop the timeout.
pub(crate) fn http_client(llm: &LlmSettings) -> Result<reqwest::Client, LlmError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder().tcp_nodelay(true);
    if llm.timeout_ms > 0 {
        builder = builder.timeout(std::time::Duration::from_millis(llm.timeout_ms));
    }
    builder
        .build()
        .map_err(|e| LlmError::Invalid(format!("the HTTP client could not be built: {e}")))
}

pub(crate) fn client(llm: &LlmSettings) -> Result<Client<OpenAIConfig>, LlmError> {
    install_crypto_provider();
    let base = if llm.base_url.trim().is_empty() {
        OPENAI_BASE_URL
    } else {
        llm.base_url.trim_end_matches('/')
    };
    let mut config = OpenAIConfig::new().with_api_base(base);
    // Local servers (vLLM, llama.cpp, Ollama) take any key; never send the process env's key
    // implicitly: only the configured one.
    config = config.with_api_key(
        llm.api_key
            .as_ref()
            .map(|k| k.expose_secret().to_string())
            .unwrap_or_default(),
    );
    Ok(Client::with_config(config).with_http_client(http_client(llm)?))
}

/// Embeddings from an OpenAI-compatible `/embeddings` endpoint.
pub struct OpenAiEmbedder {
    client: Client<OpenAIConfig>,
    model: String,
    dimensions: u32,
    model_id: String,
}

impl OpenAiEmbedder {
    pub fn new(llm: &LlmSettings, emb: &EmbeddingSettings) -> Result<Self, EmbedError> {
        if !llm.is_configured() {
            return Err(EmbedError::Remote(
                "embedding.kind = \"openai\" needs an endpoint: set llm.base_url (GRADER__LLM__BASE_URL) or OPENAI_API_KEY".into(),
            ));
        }
        Ok(OpenAiEmbedder {
            client: client(llm).map_err(|e| EmbedError::Remote(e.to_string()))?,
            model: emb.openai_model.clone(),
            dimensions: emb.openai_dimensions,
            model_id: format!("openai/{}/{}", emb.openai_model, emb.openai_dimensions),
        })
    }
}

impl Embedder for OpenAiEmbedder {
    fn dim(&self) -> usize {
        self.dimensions as usize
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let req = CreateEmbeddingRequestArgs::default()
                .model(self.model.clone())
                .input(EmbeddingInput::StringArray(texts.to_vec()))
                .dimensions(self.dimensions)
                .build()
                .map_err(|e| EmbedError::Remote(e.to_string()))?;
            let resp = self
                .client
                .embeddings()
                .create(req)
                .await
                .map_err(|e| EmbedError::Remote(e.to_string()))?;
            let mut data = resp.data;
            data.sort_by_key(|d| d.index);
            if data.len() != texts.len() {
                return Err(EmbedError::Remote(format!(
                    "asked for {} embeddings, got {}",
                    texts.len(),
                    data.len()
                )));
            }
            Ok(data
                .into_iter()
                .map(|d| {
                    let mut v = d.embedding;
                    normalize(&mut v);
                    v
                })
                .collect())
        })
    }
}
