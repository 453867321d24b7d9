//! A photo on Meta's Cloud API: the webhook gives a media id; `GET {graph_base}/{media-id}`
//! with the bearer token answers a short-lived URL, which is downloaded with the same token
//! — only over https (plain http only to a loopback host, a local fake), never following a
//! redirect — within badge reading's size limit, and only if it is an image. The rest of
//! the badge flow is the channel's concern no more.

use futures_util::future::BoxFuture;
use reqwest::Url;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::graph::{GraphClient, join};
use crate::config::meta::secure_or_loopback;
use crate::desk::badge::{FetchError, FetchMedia, MAX_PHOTO_BYTES};

#[derive(Deserialize)]
struct MediaInfo {
    url: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    file_size: Option<u64>,
}

/// Downloads photos through the Graph API.
#[derive(Debug, Clone)]
pub struct MetaMedia {
    graph: GraphClient,
}

impl MetaMedia {
    /// Downloads through `graph`'s base, with its token.
    pub fn new(graph: GraphClient) -> MetaMedia {
        MetaMedia { graph }
    }

    async fn get(&self, media_id: &str) -> Result<Vec<u8>, FetchError> {
        let failed = |m: String| FetchError::Failed(m);
        if media_id.is_empty()
            || !media_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        {
            return Err(failed("not a media id".into()));
        }
        let lookup = join(self.graph.base(), media_id).map_err(|e| failed(e.to_string()))?;
        let token = self.graph.token().expose_secret();
        let response = self
            .graph
            .http()
            .get(lookup)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|_| failed("the media lookup failed".into()))?;
        if !response.status().is_success() {
            return Err(failed(format!("the media lookup answered HTTP {}", response.status().as_u16())));
        }
        let info: MediaInfo =
            serde_json::from_slice(&response.bytes().await.map_err(|e| failed(e.to_string()))?)
                .map_err(|_| failed("the media lookup answered no URL".into()))?;
        if !crate::ocr::decode::is_image_type(info.mime_type.as_deref()) {
            return Err(failed("the media is not an image".into()));
        }
        if info.file_size.is_some_and(|n| n > MAX_PHOTO_BYTES as u64) {
            return Err(FetchError::TooLarge(format!("{} bytes", info.file_size.unwrap_or(0))));
        }
        let url = Url::parse(&info.url).map_err(|_| failed("the media URL is not a URL".into()))?;
        if !secure_or_loopback(&url) || !url.username().is_empty() || url.password().is_some() {
            return Err(failed("the media URL is not https".into()));
        }
        let mut response = self
            .graph
            .http()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|_| failed("the media download failed".into()))?;
        if !response.status().is_success() {
            return Err(failed(format!("the media download answered HTTP {}", response.status().as_u16())));
        }
        if response.content_length().is_some_and(|n| n > MAX_PHOTO_BYTES as u64) {
            return Err(FetchError::TooLarge("declared too large".into()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|_| failed("the media download broke off".into()))?
        {
            if bytes.len() + chunk.len() > MAX_PHOTO_BYTES {
                return Err(FetchError::TooLarge(format!("over {MAX_PHOTO_BYTES} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

impl FetchMedia for MetaMedia {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        Box::pin(self.get(url))
    }
}
