//! Downloading the photo a user sent, safely.
//!
//! A webhook's `MediaUrl0` says where Twilio keeps the file: on its API host
//! (`https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}`),
//! which answers with a redirect to its CDN. A forged webhook may carry any URL, so:
//!
//! - the account's credentials (HTTP Basic, `TWILIO_ACCOUNT_SID`:`TWILIO_AUTH_TOKEN`) go only
//!   to that exact media path on the configured API host, for the configured account;
//! - redirects are followed by hand, never with the credentials;
//! - only `https` (a test-only switch allows `http` to loopback);
//! - at most [`MAX_MEDIA_BYTES`] (Twilio's 5 MB), streamed, with timeouts;
//! - the bytes must start like a JPEG, PNG or WebP file whatever the declared type, and the
//!   image's dimensions are read and checked before it is decoded (no decompression bombs).

use std::io::Cursor;
use std::time::Duration;

use image::{ImageFormat, ImageReader, Limits, RgbImage};
use reqwest::Url;
use reqwest::header::{CONTENT_LENGTH, LOCATION};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

/// Twilio's largest media file.
pub const MAX_MEDIA_BYTES: usize = 5 * 1024 * 1024;
/// The largest width or height accepted before decoding.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// The most pixels accepted before decoding (a 1600 × 1200 photo has 1.9 million).
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;
/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// Why a photo could not be had.
#[derive(Debug, Error)]
pub enum MediaError {
    /// The URL is unusable or not allowed.
    #[error("media URL refused: {0}")]
    Url(String),
    /// The file is larger than allowed.
    #[error("the file is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The server answered with an error status.
    #[error("the media server answered HTTP {0}")]
    Status(u16),
    /// Too many redirects.
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    /// The download failed (network, timeout).
    #[error("download failed: {0}")]
    Http(String),
    /// The bytes are not a JPEG, PNG or WebP image.
    #[error("the file is not a JPEG, PNG or WebP image")]
    NotAnImage,
    /// The image is too large to decode safely.
    #[error("the image is {width} × {height} pixels, more than allowed")]
    Dimensions {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// The image data is corrupt.
    #[error("the image cannot be decoded: {0}")]
    Decode(String),
}

/// Where and how media may be fetched.
#[derive(Debug, Clone)]
pub struct MediaPolicy {
    /// Twilio's API base URL (`https://api.twilio.com`); credentials go only there.
    pub api_base: Url,
    /// The account whose media paths get credentials.
    pub account_sid: Option<String>,
    /// The account's auth token.
    pub auth_token: Option<SecretString>,
    /// Largest file.
    pub max_bytes: usize,
    /// Whole-download timeout.
    pub timeout: Duration,
    /// Test only: allow `http://` to loopback addresses.
    pub allow_http_loopback: bool,
}

impl MediaPolicy {
    /// The production policy for `account_sid` and `auth_token` on Twilio's API host.
    pub fn twilio(api_base: Url, account_sid: Option<String>, auth_token: Option<SecretString>) -> Self {
        MediaPolicy {
            api_base,
            account_sid,
            auth_token,
            max_bytes: MAX_MEDIA_BYTES,
            timeout: Duration::from_secs(20),
            allow_http_loopback: false,
        }
    }
}

/// Downloads media under a [`MediaPolicy`].
#[derive(Debug, Clone)]
pub struct MediaFetcher {
    client: reqwest::Client,
    policy: MediaPolicy,
}

/// True when `content_type` (as Twilio declares it) is an image.
pub fn is_image_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("image/"))
}

impl MediaFetcher {
    /// A fetcher that follows no redirect by itself.
    pub fn new(policy: MediaPolicy) -> Result<MediaFetcher, MediaError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(policy.timeout)
            .user_agent(concat!("wabot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MediaError::Http(e.to_string()))?;
        Ok(MediaFetcher { client, policy })
    }

    /// The policy in force.
    pub fn policy(&self) -> &MediaPolicy {
        &self.policy
    }

    /// Downloads `url`, following redirects without credentials, within the size limit.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, MediaError> {
        let mut url = Url::parse(url).map_err(|e| MediaError::Url(format!("{e}")))?;
        let mut with_credentials = self.credentials_for(&url);
        for _ in 0..=MAX_REDIRECTS {
            self.check_scheme(&url)?;
            let mut request = self.client.get(url.clone());
            if let Some((sid, token)) = with_credentials.take() {
                request = request.basic_auth(sid, Some(token.expose_secret()));
            }
            let response = request.send().await.map_err(|e| MediaError::Http(without_url(&e)))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(MediaError::Status(status.as_u16()))?;
                url = url.join(location).map_err(|e| MediaError::Url(format!("redirect: {e}")))?;
                continue;
            }
            if !status.is_success() {
                return Err(MediaError::Status(status.as_u16()));
            }
            return self.read_body(response).await;
        }
        Err(MediaError::TooManyRedirects)
    }

    /// The credentials, only for a media path of our account on the API host.
    fn credentials_for(&self, url: &Url) -> Option<(String, SecretString)> {
        let sid = self.policy.account_sid.as_deref()?;
        let token = self.policy.auth_token.as_ref()?;
        let api = &self.policy.api_base;
        let same_origin = url.scheme() == api.scheme()
            && url.host_str() == api.host_str()
            && url.port_or_known_default() == api.port_or_known_default();
        if !same_origin || url.query().is_some() || url.username() != "" || url.password().is_some() {
            return None;
        }
        let segments: Vec<&str> = url.path_segments()?.collect();
        let sid_like =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric());
        let media_path = matches!(segments.as_slice(),
            ["2010-04-01", "Accounts", account, "Messages", message, "Media", media]
                if *account == sid && sid_like(message) && sid_like(media));
        media_path.then(|| (sid.to_owned(), token.clone()))
    }

    fn check_scheme(&self, url: &Url) -> Result<(), MediaError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.policy.allow_http_loopback && is_loopback(url) => Ok(()),
            other => Err(MediaError::Url(format!("{other}:// is not allowed, only https://"))),
        }
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, MediaError> {
        let limit = self.policy.max_bytes;
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(MediaError::TooLarge { limit });
        }
        let mut body = Vec::with_capacity(declared.map_or(64 * 1024, |n| n as usize));
        while let Some(chunk) = response.chunk().await.map_err(|e| MediaError::Http(without_url(&e)))? {
            if body.len() + chunk.len() > limit {
                return Err(MediaError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// reqwest's message without the URL (which may carry a signed CDN query string).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transfer error"
    };
    kind.to_owned()
}

/// The image format announced by the file's first bytes.
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else {
        None
    }
}

/// Decodes a JPEG, PNG or WebP photo to RGB after checking its magic number and dimensions.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, MediaError> {
    let format = sniff_format(bytes).ok_or(MediaError::NotAnImage)?;
    let limits = || {
        let mut l = Limits::default();
        l.max_image_width = Some(MAX_IMAGE_SIDE);
        l.max_image_height = Some(MAX_IMAGE_SIDE);
        l.max_alloc = Some(MAX_IMAGE_PIXELS * 4);
        l
    };
    let mut probe = ImageReader::with_format(Cursor::new(bytes), format);
    probe.limits(limits());
    let (width, height) = probe.into_dimensions().map_err(|e| decode_error(e, (0, 0)))?;
    if width > MAX_IMAGE_SIDE
        || height > MAX_IMAGE_SIDE
        || u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS
    {
        return Err(MediaError::Dimensions { width, height });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits());
    let image = reader.decode().map_err(|e| decode_error(e, (width, height)))?;
    Ok(image.to_rgb8())
}

fn decode_error(e: image::ImageError, (width, height): (u32, u32)) -> MediaError {
    match e {
        image::ImageError::Limits(_) => MediaError::Dimensions { width, height },
        other => MediaError::Decode(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher(sid: Option<&str>) -> MediaFetcher {
        let policy = MediaPolicy::twilio(
            Url::parse("https://api.twilio.com").unwrap(),
            sid.map(str::to_owned),
            Some(SecretString::from("token".to_owned())),
        );
        MediaFetcher::new(policy).unwrap()
    }

    #[test]
    fn credentials_go_only_to_our_accounts_media_paths_on_the_api_host() {
        let f = fetcher(Some("AC123"));
        let ok = "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1";
        assert!(f.credentials_for(&Url::parse(ok).unwrap()).is_some());
        for refused in [
            "https://api.twilio.com.evil.example/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1",
            "https://evil.example/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1",
            "http://api.twilio.com/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1",
            "https://api.twilio.com:8443/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1",
            "https://api.twilio.com/2010-04-01/Accounts/AC999/Messages/MM1/Media/ME1",
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json",
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1?x=1",
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages/MM1/Media/..%2F..",
            "https://user@api.twilio.com/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1",
        ] {
            assert!(f.credentials_for(&Url::parse(refused).unwrap()).is_none(), "{refused}");
        }
        assert!(fetcher(None).credentials_for(&Url::parse(ok).unwrap()).is_none(), "no SID, no credentials");
    }

    #[test]
    fn only_https_is_fetched() {
        let f = fetcher(Some("AC123"));
        assert!(f.check_scheme(&Url::parse("http://127.0.0.1:9/x").unwrap()).is_err());
        assert!(f.check_scheme(&Url::parse("file:///etc/passwd").unwrap()).is_err());
        assert!(f.check_scheme(&Url::parse("https://x.example/a").unwrap()).is_ok());
    }

    #[test]
    fn the_magic_number_decides_not_the_declared_type() {
        assert!(matches!(decode_image(b"%PDF-1.7 ..."), Err(MediaError::NotAnImage)));
        assert!(matches!(decode_image(b"GIF89a......"), Err(MediaError::NotAnImage)));
        assert!(matches!(decode_image(&[0xFF, 0xD8, 0xFF, 0x00]), Err(MediaError::Decode(_))));
    }

    #[test]
    fn a_huge_image_is_refused_before_decoding() {
        // A PNG header announcing 100000 × 100000 pixels, with no pixel data at all.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&png[12..]);
        png.extend_from_slice(&crc.to_be_bytes());
        let err = decode_image(&png).unwrap_err();
        assert!(matches!(err, MediaError::Dimensions { .. }), "{err}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn only_image_types_are_downloaded() {
        assert!(is_image_type(Some("image/jpeg")));
        assert!(is_image_type(Some("IMAGE/PNG ")));
        assert!(!is_image_type(Some("application/pdf")));
        assert!(!is_image_type(None));
    }
}
