//! What happened to a request, decided once at end of stream: the response
//! code alone misses gRPC errors in trailers and resets after headers.

/// Envoy response flag bits as the `response.flags` attribute reports them.
pub mod flags {
    pub const NO_HEALTHY_UPSTREAM: i64 = 0x2;
    pub const UPSTREAM_REQUEST_TIMEOUT: i64 = 0x4;
    pub const UPSTREAM_REMOTE_RESET: i64 = 0x10;
    pub const UPSTREAM_CONNECTION_FAILURE: i64 = 0x20;
    pub const UPSTREAM_CONNECTION_TERMINATION: i64 = 0x40;
    pub const UPSTREAM_OVERFLOW: i64 = 0x80;
    pub const UPSTREAM_RETRY_LIMIT_EXCEEDED: i64 = 0x8000;
    pub const STREAM_IDLE_TIMEOUT: i64 = 0x1_0000;
    pub const UPSTREAM_MAX_STREAM_DURATION_REACHED: i64 = 0x8_0000;
    pub const DURATION_TIMEOUT: i64 = 0x40_0000;
    /// UPE: e.g. an upstream that cut a response off mid-body.
    pub const UPSTREAM_PROTOCOL_ERROR: i64 = 0x80_0000;
    pub const TIMEOUT: i64 = UPSTREAM_REQUEST_TIMEOUT
        | STREAM_IDLE_TIMEOUT
        | UPSTREAM_MAX_STREAM_DURATION_REACHED
        | DURATION_TIMEOUT;
    pub const RESET: i64 = UPSTREAM_REMOTE_RESET
        | UPSTREAM_CONNECTION_FAILURE
        | UPSTREAM_CONNECTION_TERMINATION
        | UPSTREAM_RETRY_LIMIT_EXCEEDED
        | UPSTREAM_PROTOCOL_ERROR;
}

/// The response code's class; `None` when no response was sent (client gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeClass {
    None,
    C1xx,
    C2xx,
    C3xx,
    C4xx,
    C5xx,
}

impl CodeClass {
    pub const ALL: [CodeClass; 6] = [
        CodeClass::None,
        CodeClass::C1xx,
        CodeClass::C2xx,
        CodeClass::C3xx,
        CodeClass::C4xx,
        CodeClass::C5xx,
    ];

    pub fn of(code: i64) -> Self {
        match code {
            100..=199 => CodeClass::C1xx,
            200..=299 => CodeClass::C2xx,
            300..=399 => CodeClass::C3xx,
            400..=499 => CodeClass::C4xx,
            500..=599 => CodeClass::C5xx,
            _ => CodeClass::None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CodeClass::None => "none",
            CodeClass::C1xx => "1xx",
            CodeClass::C2xx => "2xx",
            CodeClass::C3xx => "3xx",
            CodeClass::C4xx => "4xx",
            CodeClass::C5xx => "5xx",
        }
    }

    pub fn index(self) -> u8 {
        self as u8
    }
}

/// Why a request counts as an error. Exactly one kind per failed request, so
/// the kinds add up to the error total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The upstream answered 5xx.
    Http5xx,
    /// A gRPC response whose `grpc-status` (headers or trailers) is not OK.
    Grpc,
    /// The upstream connection failed or was reset.
    Reset,
    /// The upstream did not answer within the route timeout.
    Timeout,
    /// Envoy answered 5xx itself (no healthy upstream, overflow, a filter).
    Local,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Http5xx,
        ErrorKind::Grpc,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Local,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Http5xx => "5xx",
            ErrorKind::Grpc => "grpc",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Local => "local",
        }
    }

    pub fn index(self) -> u8 {
        self as u8
    }
}

/// Classifies a finished stream. `complete` says the response reached its
/// end. `details` (the `response.code_details` attribute) is fetched only
/// when the flags leave the source of a 5xx, or of a cut-off response, open.
pub fn classify(
    code: i64,
    flags: i64,
    complete: bool,
    grpc_status: Option<u32>,
    details: impl FnOnce() -> Details,
) -> (CodeClass, Option<ErrorKind>) {
    let class = CodeClass::of(code);
    let error = if flags & flags::TIMEOUT != 0 {
        Some(ErrorKind::Timeout)
    } else if flags & flags::RESET != 0 {
        Some(ErrorKind::Reset)
    } else if class == CodeClass::C5xx {
        match details() {
            Details::ViaUpstream => Some(ErrorKind::Http5xx),
            _ => Some(ErrorKind::Local),
        }
    } else if !complete && class != CodeClass::None {
        // Started, never finished: an upstream reset whatever flag Envoy chose;
        // a client that went away is not the version's fault.
        match details() {
            Details::UpstreamReset => Some(ErrorKind::Reset),
            _ => None,
        }
    } else if grpc_status.is_some_and(|s| s != 0) {
        Some(ErrorKind::Grpc)
    } else {
        None
    };
    (class, error)
}

/// What the `response.code_details` attribute says about who ended a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Details {
    /// `via_upstream`: the upstream sent this status.
    ViaUpstream,
    /// `upstream_reset…`: the upstream connection broke.
    UpstreamReset,
    /// Anything else, or no attribute.
    Other,
}

impl Details {
    pub fn of(details: Option<&[u8]>) -> Details {
        match details {
            Some(b"via_upstream") => Details::ViaUpstream,
            Some(d) if d.starts_with(b"upstream_reset") => Details::UpstreamReset,
            _ => Details::Other,
        }
    }
}

/// Parses a `:status` response header.
pub fn http_status(value: &[u8]) -> Option<i64> {
    decimal_u32(value).map(i64::from)
}

/// Parses a `grpc-status` value; garbage is treated as UNKNOWN (2), as gRPC
/// clients do, so a broken server is never counted as healthy.
pub fn grpc_status(value: &[u8]) -> u32 {
    decimal_u32(value.trim_ascii()).unwrap_or(2)
}

/// ASCII digits (after an optional `+`, as `str::parse` allows) that fit a `u32`.
fn decimal_u32(bytes: &[u8]) -> Option<u32> {
    let digits = bytes.strip_prefix(b"+").unwrap_or(bytes);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u32::from(d - b'0')))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn via(d: &str) -> impl FnOnce() -> Details + '_ {
        move || Details::of(Some(d.as_bytes()))
    }

    #[test]
    fn successful_responses_are_not_errors() {
        assert_eq!(
            classify(200, 0, true, None, via("via_upstream")),
            (CodeClass::C2xx, None)
        );
        assert_eq!(
            classify(404, 0, true, None, via("via_upstream")),
            (CodeClass::C4xx, None)
        );
        assert_eq!(
            classify(200, 0, true, Some(0), via("via_upstream")),
            (CodeClass::C2xx, None)
        );
    }

    #[test]
    fn upstream_and_local_5xx_are_told_apart() {
        assert_eq!(
            classify(503, 0, true, None, via("via_upstream")),
            (CodeClass::C5xx, Some(ErrorKind::Http5xx))
        );
        assert_eq!(
            classify(
                503,
                flags::NO_HEALTHY_UPSTREAM,
                true,
                None,
                via("no_healthy_upstream")
            ),
            (CodeClass::C5xx, Some(ErrorKind::Local))
        );
        assert_eq!(
            classify(500, 0, true, None, || Details::of(None)),
            (CodeClass::C5xx, Some(ErrorKind::Local))
        );
    }

    #[test]
    fn timeouts_and_resets_win_over_the_code() {
        let never = || -> Details { unreachable!("details not needed") };
        assert_eq!(
            classify(504, flags::UPSTREAM_REQUEST_TIMEOUT, true, None, never),
            (CodeClass::C5xx, Some(ErrorKind::Timeout))
        );
        assert_eq!(
            classify(503, flags::UPSTREAM_REMOTE_RESET, true, None, never),
            (CodeClass::C5xx, Some(ErrorKind::Reset))
        );
        assert_eq!(
            classify(200, flags::UPSTREAM_REMOTE_RESET, true, None, never),
            (CodeClass::C2xx, Some(ErrorKind::Reset))
        );
        assert_eq!(
            classify(503, flags::UPSTREAM_CONNECTION_FAILURE, true, None, never),
            (CodeClass::C5xx, Some(ErrorKind::Reset))
        );
    }

    #[test]
    fn a_response_cut_off_mid_body_is_a_reset() {
        let never = || -> Details { unreachable!("details not needed") };
        assert_eq!(
            classify(200, flags::UPSTREAM_PROTOCOL_ERROR, false, None, never),
            (CodeClass::C2xx, Some(ErrorKind::Reset))
        );
        let details = via("upstream_reset_after_response_started{remote_reset}");
        assert_eq!(
            classify(200, 0, false, None, details),
            (CodeClass::C2xx, Some(ErrorKind::Reset))
        );
        // The client went away: not an error.
        let gone = via("downstream_remote_disconnect");
        assert_eq!(
            classify(200, 0x4000, false, None, gone),
            (CodeClass::C2xx, None)
        );
        assert_eq!(classify(0, 0, false, None, never), (CodeClass::None, None));
    }

    #[test]
    fn idle_and_duration_timeouts_are_timeouts() {
        let never = || -> Details { unreachable!("details not needed") };
        for f in [
            flags::STREAM_IDLE_TIMEOUT,
            flags::UPSTREAM_MAX_STREAM_DURATION_REACHED,
            flags::DURATION_TIMEOUT,
        ] {
            assert_eq!(
                classify(504, f, true, None, never),
                (CodeClass::C5xx, Some(ErrorKind::Timeout))
            );
        }
    }

    #[test]
    fn a_grpc_error_behind_http_200_is_an_error() {
        assert_eq!(
            classify(200, 0, true, Some(14), via("via_upstream")),
            (CodeClass::C2xx, Some(ErrorKind::Grpc))
        );
    }

    #[test]
    fn no_response_is_class_none_and_not_an_error() {
        assert_eq!(classify(0, 0, true, None, via("")), (CodeClass::None, None));
        assert_eq!(CodeClass::of(999), CodeClass::None);
        assert_eq!(CodeClass::of(100).label(), "1xx");
    }

    #[test]
    fn status_values_are_decimal_digits() {
        assert_eq!(http_status(b"200"), Some(200));
        assert_eq!(http_status(b"503"), Some(503));
        for bad in [&b""[..], b"2x0", b"-1", b"+", b"99999999999"] {
            assert_eq!(http_status(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn grpc_status_values_are_parsed_leniently() {
        assert_eq!(grpc_status(b"0"), 0);
        assert_eq!(grpc_status(b" 14 "), 14);
        assert_eq!(grpc_status(b"\xff"), 2);
        assert_eq!(grpc_status(b""), 2);
    }
}
