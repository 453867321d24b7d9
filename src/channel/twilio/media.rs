//! Downloading the photo a user sent, safely.
//!
//! A webhook's `MediaUrl0` says where Twilio keeps the file: on its API host
//! (`https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}`),
//! which answers with a redirect to its CDN. A forged or replayed webhook may carry any URL,
//! and the server must not become a way to reach other hosts, so:
//!
//! - the first URL must be exactly that media path of the configured account
//!   (`TWILIO_ACCOUNT_SID`) on the configured API origin, without user name, password or
//!   query; anything else is refused before any connection;
//! - the account's credentials (HTTP Basic, `TWILIO_ACCOUNT_SID`:`TWILIO_AUTH_TOKEN`) go only
//!   there;
//! - redirects are followed by hand, never with the credentials, and only to the media CDN
//!   hosts of [`MediaPolicy::redirect_hosts`] (by default [`TWILIO_MEDIA_HOSTS`](crate::config::twilio::TWILIO_MEDIA_HOSTS));
//! - every address connected to must be public: names are resolved by [`PublicResolver`],
//!   which refuses a name with any loopback, private, link-local, CGNAT, multicast,
//!   reserved or IPv4-mapped address at connection time (so a name that changes its answer
//!   between a check and the connection — DNS rebinding — gains nothing), and an IP-literal
//!   host is checked the same way ([`is_public`]); the URL parser has already turned
//!   `2130706433`, `0x7f.1` or `0177.0.0.1` into `127.0.0.1`. The only exceptions are
//!   IP-literal `host:port` origins written in the configuration itself (the API base or a
//!   redirect host), which is how the tests point at servers on loopback; the defaults name
//!   none. No proxy from the environment is used (it would resolve names for us);
//! - only `https` (a test-only switch allows `http` to loopback);
//! - at most [`MAX_MEDIA_BYTES`] (Twilio's 5 MB), streamed, with timeouts;
//! - the bytes must start like a JPEG, PNG or WebP file whatever the declared type, and the
//!   image's dimensions are read and checked before it is decoded (no decompression bombs).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::Url;
use reqwest::header::{CONTENT_LENGTH, LOCATION};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use crate::desk::badge::{FetchError, FetchMedia};

/// The largest media file fetched: badge reading's limit, the same on every channel.
pub const MAX_MEDIA_BYTES: usize = crate::desk::badge::MAX_PHOTO_BYTES;
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
}

impl FetchMedia for MediaFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        Box::pin(async move {
            MediaFetcher::fetch(self, url).await.map_err(|e| match e {
                MediaError::TooLarge { .. } => FetchError::TooLarge(e.to_string()),
                other => FetchError::Failed(other.to_string()),
            })
        })
    }
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
    /// The hosts a media URL may redirect to (`host` or `host:port`, compared without regard
    /// to case).
    pub redirect_hosts: Vec<String>,
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
            redirect_hosts: crate::config::twilio::TWILIO_MEDIA_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
        }
    }
}

/// Downloads media under a [`MediaPolicy`].
#[derive(Debug, Clone)]
pub struct MediaFetcher {
    client: reqwest::Client,
    policy: MediaPolicy,
}

impl MediaFetcher {
    /// A fetcher that follows no redirect by itself and connects only to public addresses.
    pub fn new(policy: MediaPolicy) -> Result<MediaFetcher, MediaError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicResolver))
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
        if !self.is_media_path(&url) {
            return Err(MediaError::Url(
                "not a media path of the configured account on the configured API host".into(),
            ));
        }
        let mut with_credentials = self.credentials();
        for hop in 0..=MAX_REDIRECTS {
            if hop > 0 && !self.is_redirect_host(&url) {
                return Err(MediaError::Url("redirect to a host that is not a media CDN host".into()));
            }
            self.check_scheme(&url)?;
            self.check_address(&url)?;
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

    /// The credentials, when both halves are configured.
    fn credentials(&self) -> Option<(String, SecretString)> {
        Some((self.policy.account_sid.clone()?, self.policy.auth_token.clone()?))
    }

    /// The credentials for `url`: only for a media path of our account on the API host.
    #[cfg(test)]
    fn credentials_for(&self, url: &Url) -> Option<(String, SecretString)> {
        self.is_media_path(url).then(|| self.credentials()).flatten()
    }

    /// Whether `url` is `…/Accounts/{our SID}/Messages/{sid}/Media/{sid}` on the API origin,
    /// with no user name, password, query or fragment.
    fn is_media_path(&self, url: &Url) -> bool {
        let Some(sid) = self.policy.account_sid.as_deref() else { return false };
        let api = &self.policy.api_base;
        let same_origin = url.scheme() == api.scheme()
            && url.host() == api.host()
            && url.port_or_known_default() == api.port_or_known_default();
        if !same_origin
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return false;
        }
        let Some(segments) = url.path_segments() else { return false };
        let segments: Vec<&str> = segments.collect();
        let sid_like =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric());
        matches!(segments.as_slice(),
            ["2010-04-01", "Accounts", account, "Messages", message, "Media", media]
                if *account == sid && sid_like(message) && sid_like(media))
    }

    /// Whether `url` is on one of the redirect hosts, with no user name or password.
    fn is_redirect_host(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        let port = url.port_or_known_default();
        self.policy.redirect_hosts.iter().any(|allowed| host_matches(allowed, host, port))
    }

    /// Refuses an IP-literal host that is not public, unless the configuration names that
    /// very address and port. Names are checked when they are resolved ([`PublicResolver`]).
    fn check_address(&self, url: &Url) -> Result<(), MediaError> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(MediaError::Url("no host".into())),
        };
        if is_public(ip) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(0);
        if self.configured_addresses().contains(&SocketAddr::new(ip, port)) {
            return Ok(());
        }
        Err(MediaError::Url(format!("{ip} is not a public address")))
    }

    /// The IP-literal origins the configuration names: the API base, the redirect hosts.
    fn configured_addresses(&self) -> Vec<SocketAddr> {
        let api = &self.policy.api_base;
        let api = match api.host() {
            Some(url::Host::Ipv4(ip)) => {
                api.port_or_known_default().map(|p| SocketAddr::new(IpAddr::V4(ip), p))
            }
            Some(url::Host::Ipv6(ip)) => {
                api.port_or_known_default().map(|p| SocketAddr::new(IpAddr::V6(ip), p))
            }
            _ => None,
        };
        api.into_iter()
            .chain(self.policy.redirect_hosts.iter().filter_map(|h| h.trim().parse().ok()))
            .collect()
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

/// Whether `allowed` (`host`, `host:port`, `[v6]` or `[v6]:port`) names `host` (as
/// [`Url::host_str`] gives it) and `port`.
fn host_matches(allowed: &str, host: &str, port: Option<u16>) -> bool {
    let allowed = allowed.trim().to_ascii_lowercase();
    match allowed.rsplit_once(':') {
        // A port after a name, an IPv4 address or a bracketed IPv6 address.
        Some((name, p)) if !name.contains(':') || name.ends_with(']') => {
            name == host && p.parse::<u16>().is_ok_and(|p| Some(p) == port)
        }
        _ => allowed == host,
    }
}

/// Whether a download may connect to `ip`: not loopback, private (10/8, 172.16/12,
/// 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), shared (CGNAT, 100.64/10),
/// unspecified (0/8, ::), multicast, broadcast, reserved (240/4), documentation or
/// benchmarking ranges, the IETF's 192.0.0/24, site-local fec0::/10, nor an IPv4 address in
/// IPv6 clothing (mapped ::ffff:0:0/96, compatible ::/96, Teredo 2001::/32), and 6to4
/// (2002::/16) or NAT64 (64:ff9b::/96) only when the IPv4 address inside is public.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || s[..5] == [0, 0, 0, 0, 0]
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        || (s[0] == 0x2001 && s[1] == 0)
        || (s[0] == 0x2001 && s[1] == 0x0db8))
}

/// A name whose addresses are not all public.
#[derive(Debug, Error)]
#[error("{0} resolves to an address that is not public")]
pub struct NotPublic(String);

/// Resolves names for media downloads and refuses any whose answer holds an address that is
/// not public ([`is_public`]). It runs when the connection is made, on the very addresses
/// connected to, so a name that answers differently to a check and to the connection
/// cannot slip through.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(Box::new(NotPublic(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// reqwest's message without the URL (which may carry a signed CDN query string).
fn without_url(e: &reqwest::Error) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(refused) = inner.downcast_ref::<NotPublic>() {
            return format!("refused: {refused}");
        }
        source = inner.source();
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transfer error"
    };
    kind.to_owned()
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
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "2001:db8::1",
            "2001:0:4136::1",
            "2002:7f00:1::",
            "2002:a00:1::",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "54.172.60.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "2002:808:808::",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn every_disguise_of_another_host_is_refused_as_a_first_url() {
        let f = fetcher(Some("AC123"));
        let path = "/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1";
        assert!(f.is_media_path(&Url::parse(&format!("https://api.twilio.com{path}")).unwrap()));
        for refused in [
            format!("https://user@127.0.0.1{path}"),
            format!("https://user@api.twilio.com{path}"),
            format!("https://127.0.0.1\\@api.twilio.com{path}"),
            format!("https://api.twilio.com\\@127.0.0.1{path}"),
            format!("https://localhost{path}"),
            format!("https://2130706433{path}"),
            format!("https://0x7f.1{path}"),
            format!("https://0177.0.0.1{path}"),
            format!("https://[::ffff:7f00:1]{path}"),
            format!("https://api.twilio.com{path}#x"),
            format!("https://api.twilio.com.{path}"),
        ] {
            let url = Url::parse(&refused).unwrap();
            assert!(!f.is_media_path(&url), "{refused} → {url}");
        }
        // The URL parser normalises every IPv4 spelling, and the address check sees through it.
        for literal in ["https://2130706433/x", "https://0x7f.1/x", "https://0177.0.0.1/x", "https://127.1/x"]
        {
            let url = Url::parse(literal).unwrap();
            assert_eq!(url.host_str(), Some("127.0.0.1"), "{literal}");
            assert!(f.check_address(&url).is_err(), "{literal}");
        }
        assert!(f.check_address(&Url::parse("https://[::ffff:10.0.0.1]/x").unwrap()).is_err());
        assert!(f.check_address(&Url::parse("https://8.8.8.8/x").unwrap()).is_ok());
        assert!(!fetcher(None).is_media_path(&Url::parse(&format!("https://api.twilio.com{path}")).unwrap()));
    }

    #[test]
    fn redirects_go_only_to_the_listed_cdn_hosts() {
        let f = fetcher(Some("AC123"));
        for ok in [
            "https://mms.twiliocdn.com/x?sig=1",
            "https://MEDIA.twiliocdn.com/x",
            "https://s3-external-1.amazonaws.com/media.twiliocdn.com/x",
        ] {
            assert!(f.is_redirect_host(&Url::parse(ok).unwrap()), "{ok}");
        }
        for refused in [
            "https://evil.example/x",
            "https://mms.twiliocdn.com.evil.example/x",
            "https://evil.mms.twiliocdn.com/x",
            "https://user@mms.twiliocdn.com/x",
            "https://127.0.0.1/x",
        ] {
            assert!(!f.is_redirect_host(&Url::parse(refused).unwrap()), "{refused}");
        }
        assert!(host_matches("127.0.0.1:4000", "127.0.0.1", Some(4000)));
        assert!(!host_matches("127.0.0.1:4000", "127.0.0.1", Some(4001)));
        assert!(host_matches("[::1]:80", "[::1]", Some(80)));
        assert!(host_matches("cdn.example", "cdn.example", Some(443)));
        assert!(!host_matches("cdn.example:99999", "cdn.example", Some(443)));
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_a_private_address() {
        use reqwest::dns::Resolve;
        let err = match PublicResolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(err.to_string().contains("not public"), "{err}");
    }

    #[test]
    fn only_https_is_fetched() {
        let f = fetcher(Some("AC123"));
        assert!(f.check_scheme(&Url::parse("http://127.0.0.1:9/x").unwrap()).is_err());
        assert!(f.check_scheme(&Url::parse("file:///etc/passwd").unwrap()).is_err());
        assert!(f.check_scheme(&Url::parse("https://x.example/a").unwrap()).is_ok());
    }
}
