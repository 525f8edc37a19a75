//! Envoy's attributes as `proxy_get_property` reads them: the ones Serin and the conformance
//! probe read, with Envoy 1.40's encodings (text as its bytes, integers as 8 bytes
//! little-endian, booleans as one byte) and its rules for when each is there, as the probe
//! observed them in real Envoy.

use crate::abi::Status;
use crate::headers::HeaderMap;
use crate::state::{HostState, StreamState};

/// The protocol of every stream the host runs (Envoy's `request.protocol`).
const PROTOCOL: &[u8] = b"HTTP/1.1";

/// The key of the property at `path`: its segments joined by NUL bytes, as `proxy_get_property`
/// receives a path.
pub(crate) fn key(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

/// Append the value of the property at `path` (segments joined by NUL bytes) to `out`.
pub(crate) fn property(state: &HostState, path: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
    if let Some(v) = state.config.properties.get(path) {
        out.extend_from_slice(v);
        return Ok(());
    }
    let mut segments = path.split(|&b| b == 0);
    let segments: [&[u8]; 3] = [
        segments.next().unwrap_or_default(),
        segments.next().unwrap_or_default(),
        segments.next().unwrap_or_default(),
    ];
    // More than three segments name nothing this host knows.
    if path.split(|&b| b == 0).nth(3).is_some() {
        return Err(Status::NotFound);
    }
    let config = &state.config;
    let plugin = match segments {
        [b"plugin_name", b"", b""] => Some(config.plugin_name.as_bytes()),
        [b"plugin_root_id", b"", b""] => Some(config.root_id.as_bytes()),
        [b"plugin_vm_id", b"", b""] => Some(config.vm_id.as_bytes()),
        _ => None,
    };
    if let Some(v) = plugin {
        out.extend_from_slice(v);
        return Ok(());
    }
    let s = state.stream().ok_or(Status::NotFound)?;
    if let Some(v) = s.properties.get(path) {
        out.extend_from_slice(v);
        return Ok(());
    }
    stream_attribute(s, segments, out).ok_or(Status::NotFound)
}

fn stream_attribute(s: &StreamState, segments: [&[u8]; 3], out: &mut Vec<u8>) -> Option<()> {
    // Envoy reads request and response headers from the maps it lends the filter (in the
    // callback that has them, and in the access log), but the response's code, details and
    // flags and the connection's attributes from the stream's info, which outlive callbacks.
    let request = (s.live.request_headers || s.access_log).then_some(&s.request_headers);
    let response = s
        .response_headers
        .as_ref()
        .filter(|_| s.live.response_headers || s.access_log);
    let path = || request.and_then(|m| m.get(":path"));
    let header = |map: Option<&HeaderMap>, name: &str, out: &mut Vec<u8>| {
        out.extend_from_slice(map?.get(name)?);
        Some(())
    };
    match segments {
        [b"request", b"path", b""] => header(request, ":path", out),
        [b"request", b"url_path", b""] => {
            out.extend_from_slice(path()?.split(|&b| b == b'?').next().unwrap_or_default());
            Some(())
        }
        [b"request", b"query", b""] => {
            // Present, and empty, on a path without a query.
            let path = path()?;
            if let Some(at) = path.iter().position(|&b| b == b'?') {
                out.extend_from_slice(&path[at + 1..]);
            }
            Some(())
        }
        [b"request", b"host", b""] => header(request, ":authority", out),
        [b"request", b"scheme", b""] => header(request, ":scheme", out),
        [b"request", b"method", b""] => header(request, ":method", out),
        [b"request", b"referer", b""] => header(request, "referer", out),
        [b"request", b"useragent", b""] => header(request, "user-agent", out),
        [b"request", b"id", b""] => header(request, "x-request-id", out),
        [b"request", b"protocol", b""] => {
            out.extend_from_slice(PROTOCOL);
            Some(())
        }
        [b"request", b"headers", b""] => {
            request?.serialize_into(out);
            Some(())
        }
        [b"request", b"headers", name] => joined(request?, name, out),
        [b"response", b"code", b""] => {
            let status = s.response_headers.as_ref()?.get(":status")?;
            let code: i64 = std::str::from_utf8(status).ok()?.parse().ok()?;
            out.extend_from_slice(&code.to_le_bytes());
            Some(())
        }
        [b"response", b"code_details", b""] => {
            out.extend_from_slice(s.response_code_details.as_ref()?.as_bytes());
            Some(())
        }
        // No response flag (upstream failure, timeout, ...) is modelled: always none.
        [b"response", b"flags", b""] => {
            out.extend_from_slice(&0u64.to_le_bytes());
            Some(())
        }
        [b"response", b"headers", b""] => {
            response?.serialize_into(out);
            Some(())
        }
        [b"response", b"headers", name] => joined(response?, name, out),
        [b"connection_id", b"", b""] => {
            out.extend_from_slice(&s.connection_id.to_le_bytes());
            Some(())
        }
        // The host serves plain-text connections only.
        [b"connection", b"mtls", b""] => {
            out.push(0);
            Some(())
        }
        // Any other single name is looked up in the filter state (Envoy's `wasm.<name>`).
        [name, b"", b""] if !name.is_empty() => {
            out.extend_from_slice(s.filter_state.get(name)?);
            Some(())
        }
        _ => None,
    }
}

/// Every value of header `name`, joined with commas, as Envoy's header attributes give them.
fn joined(map: &HeaderMap, name: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let name = std::str::from_utf8(name).ok()?;
    let values = map.get_all(name);
    if values.is_empty() {
        return None;
    }
    out.extend_from_slice(&values.join(&b',')[..]);
    Some(())
}
