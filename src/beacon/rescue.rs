//! The one place a beacon request's failure becomes an HTTP answer, in the
//! Beacon API's own error form: `{"code": <status>, "message": "..."}`.
//! A node's own error answers are not rescued: they pass through as the
//! node wrote them.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::BeaconError;
use crate::policy::Refusal;

/// The status a failure is answered with.
fn status(e: &BeaconError) -> StatusCode {
    match e {
        BeaconError::Closed | BeaconError::NamedClientsOnly => StatusCode::FORBIDDEN,
        BeaconError::Policy(Refusal::UnknownKey | Refusal::KeyRequired) => StatusCode::UNAUTHORIZED,
        BeaconError::Policy(Refusal::MethodBlocked(_)) => StatusCode::FORBIDDEN,
        BeaconError::Policy(
            Refusal::Limited { .. }
            | Refusal::TooCostly { .. }
            | Refusal::LimiterUnavailable
            | Refusal::TooManyConnections,
        ) => StatusCode::TOO_MANY_REQUESTS,
        BeaconError::BadPath | BeaconError::BadTopics(_) => StatusCode::BAD_REQUEST,
        BeaconError::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
        BeaconError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BeaconError::BodyRead => StatusCode::BAD_REQUEST,
        BeaconError::NoEligibleNode | BeaconError::HeadBehindClient => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        BeaconError::Node(_) | BeaconError::ReplyTooLarge(_) => StatusCode::BAD_GATEWAY,
    }
}

/// The answer to a failed request.
pub(super) fn answer(e: &BeaconError) -> Response<Full<Bytes>> {
    let status = status(e);
    let body = serde_json::json!({ "code": status.as_u16(), "message": e.to_string() });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // A head this client has not been served yet is a slot or less away.
    if let BeaconError::HeadBehindClient = e {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let BeaconError::Policy(refusal) = e {
        if let Some(after) = refusal.retry_after() {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_have_the_beacon_api_error_form() {
        let r = answer(&BeaconError::Closed);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = answer(&BeaconError::Policy(Refusal::Limited {
            retry_after: std::time::Duration::from_millis(300),
        }));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            answer(&BeaconError::NoEligibleNode).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
