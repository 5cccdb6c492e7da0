//! Webhook endpoints: where a merchant's events are pushed, which events, and
//! how each delivery is signed (the Standard Webhooks scheme: `whsec_` secrets,
//! `v1,` HMAC-SHA256 signatures over `id.timestamp.body`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::event::EventType;
use super::text::optional_text;
use super::{Obj, Problems};

/// Endpoints a merchant may register.
pub const MAX_ENDPOINTS: i64 = 16;
/// A destination URL's longest form.
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_LEN: usize = 500;

/// Whether an endpoint is sent its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    Enabled,
    Disabled,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::Enabled => "enabled",
            EndpointStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<EndpointStatus> {
        [EndpointStatus::Enabled, EndpointStatus::Disabled].into_iter().find(|x| x.as_str() == s)
    }
}

/// The events an endpoint is sent: every type (`*`) or those listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSelection {
    All,
    Only(Vec<EventType>),
}

impl EventSelection {
    pub fn includes(&self, kind: &str) -> bool {
        match self {
            EventSelection::All => true,
            EventSelection::Only(kinds) => kinds.iter().any(|k| k.as_str() == kind),
        }
    }

    /// As the API shows it: `["*"]` or the type names.
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            EventSelection::All => vec!["*"],
            EventSelection::Only(kinds) => kinds.iter().map(|k| k.as_str()).collect(),
        }
    }

    /// As stored: `*` or the names joined by commas.
    pub fn to_column(&self) -> String {
        self.names().join(",")
    }

    /// A stored selection; names this build no longer knows are left out.
    pub fn from_column(s: &str) -> EventSelection {
        if s == "*" {
            return EventSelection::All;
        }
        EventSelection::Only(s.split(',').filter_map(EventType::parse).collect())
    }
}

/// An `http` or `https` URL with a host, no credentials and no fragment. Where
/// it may point (no inside addresses) is checked against its resolved addresses
/// ([`address_allowed`]), at registration and at every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationUrl(url::Url);

impl DestinationUrl {
    pub fn parse(raw: &str, path: &str, p: &mut Problems) -> Option<DestinationUrl> {
        let raw = raw.trim();
        let bad = |p: &mut Problems, why: &str| {
            p.push(path, format!("'{path}' {why}"));
            None
        };
        if raw.len() > MAX_URL_LEN {
            return bad(p, &format!("must be at most {MAX_URL_LEN} characters long."));
        }
        let Ok(url) = url::Url::parse(raw) else {
            return bad(p, "must be an absolute URL such as https://example.com/webhooks.");
        };
        if !matches!(url.scheme(), "https" | "http") {
            return bad(p, "must be an https:// (or http://) URL.");
        }
        if url.host().is_none() {
            return bad(p, "must name a host.");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return bad(p, "must not carry credentials: deliveries are signed instead.");
        }
        if url.fragment().is_some() {
            return bad(p, "must not have a fragment ('#…').");
        }
        Some(DestinationUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

/// A create or an update of an endpoint. On create `url` and `enabled_events`
/// are required; on update every field is optional and absent ones keep their value.
#[derive(Debug)]
pub struct EndpointInput {
    pub url: Option<DestinationUrl>,
    pub enabled_events: Option<EventSelection>,
    /// `Some(None)`: cleared.
    pub description: Option<Option<String>>,
    pub status: Option<EndpointStatus>,
}

/// Every event type, or the wildcard, at most once each.
const MAX_SELECTED: usize = 64;

impl EndpointInput {
    pub fn parse_create(body: &Value) -> Result<EndpointInput, Problems> {
        Self::parse(body, true)
    }

    pub fn parse_update(body: &Value) -> Result<EndpointInput, Problems> {
        Self::parse(body, false)
    }

    fn parse(body: &Value, create: bool) -> Result<EndpointInput, Problems> {
        let mut p = Problems::new();
        let Some(mut o) = Obj::root(body, &mut p) else { return Err(p) };
        let url = if create { o.required_string("url", &mut p) } else { o.string("url", &mut p) };
        let url = url.and_then(|u| DestinationUrl::parse(u, "url", &mut p));
        if create && !o.is_set("enabledEvents") {
            p.push("enabledEvents", "'enabledEvents' is required: a list of event types, or [\"*\"] for all.");
        }
        let enabled_events = read_selection(&mut o, &mut p);
        let description = if o.contains("description") {
            Some(
                o.string("description", &mut p)
                    .and_then(|s| optional_text(s, "description", MAX_DESCRIPTION_LEN, &mut p)),
            )
        } else {
            None
        };
        let status = if create {
            None
        } else {
            o.string("status", &mut p).and_then(|s| {
                let status = EndpointStatus::parse(s);
                if status.is_none() {
                    p.push("status", "'status' must be 'enabled' or 'disabled'.");
                }
                status
            })
        };
        let touched = ["url", "enabledEvents", "description", "status"].iter().any(|k| o.contains(k));
        o.finish(&mut p);
        if !create && !touched && p.is_empty() {
            p.push("$", "Send at least one of 'url', 'enabledEvents', 'description' or 'status'.");
        }
        p.check(EndpointInput { url, enabled_events, description, status })
    }
}

fn read_selection(o: &mut Obj<'_>, p: &mut Problems) -> Option<EventSelection> {
    let items = o.array("enabledEvents", MAX_SELECTED, p)?;
    if items.is_empty() {
        p.push("enabledEvents", "'enabledEvents' must list at least one event type, or \"*\" for all.");
        return None;
    }
    let mut kinds: Vec<EventType> = Vec::new();
    let mut all = false;
    for (i, v) in items.iter().enumerate() {
        let path = format!("enabledEvents[{i}]");
        match v.as_str() {
            Some("*") if items.len() == 1 => all = true,
            Some("*") => p.push(path.clone(), format!("'{path}': \"*\" already means every event; send it alone.")),
            Some(name) => match EventType::parse(name) {
                Some(k) if kinds.contains(&k) => p.push(path.clone(), format!("'{path}' lists {name} twice.")),
                Some(k) => kinds.push(k),
                None => p.push(
                    path.clone(),
                    format!("'{path}' must be an event type, such as customer.created (see the API reference)."),
                ),
            },
            None => p.push(path.clone(), format!("'{path}' must be a string.")),
        }
    }
    Some(if all { EventSelection::All } else { EventSelection::Only(kinds) })
}

/// Whether a delivery may connect to `ip`: a public unicast address. Refused:
/// loopback, private (RFC 1918, unique local), link-local (where cloud metadata
/// services answer, 169.254.169.254), shared (RFC 6598, 100.64/10, where some
/// providers' metadata answers), unspecified, broadcast, multicast, reserved,
/// documentation and benchmarking ranges, and IPv6 forms that embed one of those
/// IPv4 addresses (mapped, NAT64, 6to4).
pub fn address_allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4),
        IpAddr::V6(v6) => v6_allowed(v6),
    }
}

fn v4_allowed(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b)))
}

fn v6_allowed(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: usize| Ipv4Addr::new((s[hi] >> 8) as u8, s[hi] as u8, (s[hi + 1] >> 8) as u8, s[hi + 1] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_allowed(v4);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_allowed(embedded(6));
    }
    if s[0] == 0x2002 {
        return v4_allowed(embedded(1));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        // IPv4-compatible (deprecated) and the rest of ::/96.
        || s[..6] == [0; 6])
}

/// An endpoint's signing secret: `whsec_` + base64 of 32 random bytes. Masked in
/// `Debug`, never serialized, wiped on drop.
pub struct SigningSecret(Zeroizing<String>);

impl SigningSecret {
    pub const PREFIX: &'static str = "whsec_";

    pub fn generate() -> SigningSecret {
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(raw.as_mut());
        SigningSecret(Zeroizing::new(format!("{}{}", Self::PREFIX, STANDARD.encode(raw.as_ref()))))
    }

    /// A stored secret read back; `None` if it is not of this form.
    pub fn from_text(s: String) -> Option<SigningSecret> {
        let s = Zeroizing::new(s);
        let ok = s.strip_prefix(Self::PREFIX).and_then(|b| STANDARD.decode(b).ok()).is_some_and(|k| !k.is_empty());
        ok.then_some(SigningSecret(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the
    /// secret's decoded bytes.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = Zeroizing::new(
            self.0.strip_prefix(Self::PREFIX).and_then(|b| STANDARD.decode(b).ok()).expect("checked when built"),
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(whsec_***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = SigningSecret::from_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()).unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(!format!("{secret:?}").contains("MfKQ"));
    }

    #[test]
    fn generated_secrets_are_32_random_bytes() {
        let (a, b) = (SigningSecret::generate(), SigningSecret::generate());
        assert_ne!(a.expose(), b.expose());
        let raw = STANDARD.decode(a.expose().strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(raw.len(), 32);
        assert!(SigningSecret::from_text("whsec_".into()).is_none());
        assert!(SigningSecret::from_text("sk_abc".into()).is_none());
    }

    #[test]
    fn inside_addresses_are_refused() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(!address_allowed(refused.parse().unwrap()), "{refused} allowed");
        }
        for allowed in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(address_allowed(allowed.parse().unwrap()), "{allowed} refused");
        }
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        let parse = |s: &str| {
            let mut p = Problems::new();
            DestinationUrl::parse(s, "url", &mut p).ok_or(p)
        };
        assert!(parse("https://example.com/hooks?x=1").is_ok());
        assert!(parse("http://127.0.0.1:9000/").is_ok(), "addresses are checked apart");
        for bad in
            ["ftp://example.com/", "https://user:pw@example.com/", "/relative", "https://example.com/#frag", "nope"]
        {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        assert!(parse(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn a_create_needs_url_and_events_and_an_update_something() {
        let ok = EndpointInput::parse_create(
            &json!({"url": "https://example.com/h", "enabledEvents": ["customer.created"]}),
        )
        .unwrap();
        assert_eq!(ok.enabled_events, Some(EventSelection::Only(vec![EventType::CustomerCreated])));
        let e = EndpointInput::parse_create(&json!({"enabledEvents": []})).unwrap_err();
        let paths: Vec<_> = e.iter().map(|p| p.path.clone()).collect();
        assert!(paths.contains(&"url".to_owned()) && paths.contains(&"enabledEvents".to_owned()), "{paths:?}");
        for bad in [json!(["*", "customer.created"]), json!(["customer.created", "customer.created"]), json!(["x.y"])] {
            assert!(EndpointInput::parse_create(&json!({"url": "https://e.com", "enabledEvents": bad})).is_err());
        }
        assert!(
            EndpointInput::parse_create(&json!({"url": "https://e.com", "enabledEvents": ["*"], "status": "enabled"}))
                .is_err()
        );
        assert!(EndpointInput::parse_update(&json!({})).is_err());
        assert!(EndpointInput::parse_update(&json!({"status": "paused"})).is_err());
        let u = EndpointInput::parse_update(&json!({"status": "disabled", "description": null})).unwrap();
        assert_eq!((u.status, u.description), (Some(EndpointStatus::Disabled), Some(None)));
    }

    #[test]
    fn selections_round_trip_through_their_column() {
        for s in
            [EventSelection::All, EventSelection::Only(vec![EventType::CustomerCreated, EventType::CustomerDeleted])]
        {
            assert_eq!(EventSelection::from_column(&s.to_column()), s);
        }
        assert!(EventSelection::All.includes("customer.created"));
        assert!(!EventSelection::Only(vec![EventType::CustomerDeleted]).includes("customer.created"));
    }
}
