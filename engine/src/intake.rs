//! Intake: decode, validate, check eligibility, render, encode and segment, route.
//!
//! Every event that will not be sent ends here with an explicit reason. Plain logic, no
//! actors: the intake actor is a shell around [`Intake::decide`].

use std::sync::Arc;
use std::time::Duration;

use pigeon_smpp::encoding;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::eligibility::Eligibility;
use crate::event::{self, DebitEvent, Rejection};
use crate::health::CarrierHealth;
use crate::notification::{mask_number, Meta, Notification, Origin};
use crate::routing::{CarrierId, RouteCursor, Router};
use crate::template::Templates;

/// What becomes of one consumed record.
#[derive(Debug)]
pub enum Decision {
    /// Ready for a carrier.
    Send(Notification),
    /// A valid event that will not be sent; ends with status `skipped`.
    Skip { meta: Meta, reason: &'static str },
    /// An invalid event: the record goes to the dead-letter topic, and a `rejected` status
    /// is published when the event id could be read.
    Reject {
        event_id: Option<String>,
        rejection: Rejection,
    },
}

/// Limits the intake enforces.
#[derive(Debug, Clone, Copy)]
pub struct IntakeLimits {
    pub max_event_bytes: usize,
    /// A debit older than this when consumed is skipped (`stale_event`); a notification not
    /// accepted by a carrier this long after its debit ends `expired`.
    pub validity: Duration,
    /// Debits ahead of other notification classes.
    pub priority_lanes: bool,
}

/// How each carrier wants texts encoded and split, by carrier id.
pub type Encodings = Arc<[encoding::SegmentOptions]>;

/// Decides each record's fate.
#[derive(Debug)]
pub struct Intake {
    templates: Templates,
    router: Router,
    limits: IntakeLimits,
    health: Arc<CarrierHealth>,
    encodings: Encodings,
    /// Subscriber preferences, checked before routing.
    eligibility: Eligibility,
    /// Concatenation reference for the next multi-part message.
    next_ref: u16,
    /// Weighted round-robin state of every route.
    cursor: RouteCursor,
    /// Scratch for candidate carriers.
    candidates: Vec<CarrierId>,
}

impl Intake {
    pub fn new(
        templates: Templates,
        router: Router,
        limits: IntakeLimits,
        health: Arc<CarrierHealth>,
        encodings: Encodings,
        eligibility: Eligibility,
    ) -> Intake {
        Intake {
            templates,
            router,
            limits,
            health,
            encodings,
            eligibility,
            next_ref: 0,
            cursor: RouteCursor::new(),
            candidates: Vec::new(),
        }
    }

    /// Takes new routing and templates; notifications already decided keep their route.
    pub fn reload(&mut self, router: Router, templates: Templates) {
        self.router = router;
        self.templates = templates;
        self.cursor = RouteCursor::new();
    }

    pub fn decide(&mut self, payload: &[u8], origin: Origin) -> Decision {
        let ev = match event::decode(payload, self.limits.max_event_bytes) {
            Ok(ev) => ev,
            Err((event_id, rejection)) => {
                return Decision::Reject {
                    event_id,
                    rejection,
                }
            }
        };
        if let Err(reason) = self.eligibility.check(&ev.customer_ref) {
            return Decision::Skip {
                meta: meta(&ev, 0),
                reason,
            };
        }
        let resolved = match self.router.route(&ev.destination) {
            Ok(r) => r,
            Err(no) => {
                let meta = meta(&ev, 0);
                return Decision::Skip {
                    meta,
                    reason: no.code(),
                };
            }
        };
        let msisdn = resolved.msisdn;
        // Carriers that are up, in the order to try (weighted pick first); when none is up,
        // all of them, so the notification waits for the first to come back.
        let health = &self.health;
        let out = &mut self.candidates;
        self.router
            .candidates(&mut self.cursor, resolved.route, |c| health.is_up(c), out);
        if out.is_empty() {
            self.router
                .candidates(&mut self.cursor, resolved.route, |_| true, out);
        }
        if out.is_empty() {
            return Decision::Skip {
                meta: meta(&ev, 0),
                reason: "no_route",
            };
        }
        let route: Arc<[CarrierId]> = out.as_slice().into();
        let age = OffsetDateTime::now_utc() - ev.occurred_at;
        let Some(left) = self
            .limits
            .validity
            .checked_sub(age.try_into().unwrap_or(Duration::ZERO))
            .filter(|left| !left.is_zero())
        else {
            return Decision::Skip {
                meta: meta(&ev, 0),
                reason: "stale_event",
            };
        };
        let body: Arc<str> = self.templates.render(&ev).into();
        let reference = self.next_ref;
        self.next_ref = self.next_ref.wrapping_add(1);
        let opts = self.encodings.get(route[0]).copied().unwrap_or_default();
        let text = encoding::segment_with(&body, reference, &opts);
        let meta = meta(&ev, text.parts.len() as u32);
        let route_pos = 0;
        Decision::Send(Notification {
            meta,
            origin,
            destination: msisdn.digits(),
            body,
            text,
            reference,
            route,
            route_pos,
            deadline: Instant::now() + left,
            // Now unless the caller knows when the record was consumed.
            consumed_at: Instant::now(),
            urgent: !self.limits.priority_lanes || ev.is_debit(),
            receipt_failover: self.router.receipt_failover(&resolved),
            resent_unanswered: false,
        })
    }
}

fn meta(ev: &DebitEvent, segments: u32) -> Meta {
    Meta {
        event_id: ev.event_id.clone(),
        transaction_id: ev.transaction_id.clone(),
        occurred_at: ev.occurred_at,
        masked: mask_number(&ev.destination),
        segments,
        possible_duplicate: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use pigeon_smpp::encoding::Coding;

    fn intake() -> Intake {
        intake_with(Eligibility::everyone())
    }

    fn intake_with(eligibility: Eligibility) -> Intake {
        let cfg = Config::from_toml(
            r#"
            [kafka]
            brokers = "127.0.0.1:1"
            [[carriers]]
            name = "a"
            address = "127.0.0.1:1"
            system_id = "p"
            password = "p"
            [routing]
            operators = { uk = ["a"], cn = ["a"] }
            prefixes = { "+44" = "uk", "+86" = "cn" }
            "#,
        )
        .expect("valid");
        let templates = Templates::new(&cfg.templates).expect("templates");
        let limits = IntakeLimits {
            max_event_bytes: 4096,
            validity: Duration::from_secs(600),
            priority_lanes: false,
        };
        let health = Arc::new(CarrierHealth::new(1));
        let encodings: Encodings = vec![Default::default()].into();
        let router = cfg.routing.router(&cfg.carriers).expect("router");
        Intake::new(templates, router, limits, health, encodings, eligibility)
    }

    fn event(dest: &str, locale: &str, merchant: &str) -> Vec<u8> {
        event_at(dest, locale, merchant, OffsetDateTime::now_utc())
    }

    fn event_at(dest: &str, locale: &str, merchant: &str, at: OffsetDateTime) -> Vec<u8> {
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .expect("rfc3339");
        serde_json::json!({
            "schema_version": 1, "event_id": "evt-1", "transaction_id": "t-1",
            "occurred_at": at, "customer_ref": "c-1",
            "destination": dest, "card_last4": "4242", "amount_minor": 1250,
            "currency": "GBP", "merchant": merchant, "locale": locale
        })
        .to_string()
        .into_bytes()
    }

    const AT: Origin = Origin {
        partition: 0,
        offset: 7,
    };

    #[test]
    fn an_english_debit_is_one_gsm_segment_to_its_route() {
        let Decision::Send(n) = intake().decide(&event("+447400900123", "en", "Cafe"), AT) else {
            panic!("expected send");
        };
        assert_eq!(n.text.coding, Coding::Gsm7);
        assert_eq!(n.text.parts.len(), 1);
        assert_eq!(n.destination, "447400900123");
        assert_eq!(n.meta.masked, "+********0123");
        assert_eq!(&*n.route, &[0]);
        assert_eq!(n.origin, AT);
    }

    #[test]
    fn chinese_is_ucs2_and_a_long_text_is_split() {
        let Decision::Send(n) = intake().decide(&event("+8613800138000", "zh-CN", "咖啡店"), AT)
        else {
            panic!("expected send");
        };
        assert_eq!(n.text.coding, Coding::Ucs2);
        let long = "The Very Long Merchant Name Limited Trading As Something";
        let Decision::Send(n) = intake().decide(&event("+447400900123", "en", long), AT) else {
            panic!("expected send");
        };
        assert_eq!(n.text.parts.len(), 2);
        assert_eq!(n.meta.segments, 2);
    }

    #[test]
    fn bad_numbers_and_unrouted_numbers_are_skipped_with_reasons() {
        let mut i = intake();
        match i.decide(&event("07700900123", "en", "x"), AT) {
            Decision::Skip { reason, meta } => {
                assert_eq!(reason, "invalid_number");
                assert_eq!(meta.event_id, "evt-1");
            }
            other => panic!("{other:?}"),
        }
        match i.decide(&event("+33612345678", "en", "x"), AT) {
            Decision::Skip { reason, .. } => assert_eq!(reason, "no_route"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_debit_older_than_the_validity_is_stale_and_a_fresh_one_has_what_is_left() {
        let old = OffsetDateTime::now_utc() - time::Duration::minutes(11);
        match intake().decide(&event_at("+447400900123", "en", "x", old), AT) {
            Decision::Skip { reason, .. } => assert_eq!(reason, "stale_event"),
            other => panic!("{other:?}"),
        }
        let recent = OffsetDateTime::now_utc() - time::Duration::minutes(4);
        let Decision::Send(n) = intake().decide(&event_at("+447400900123", "en", "x", recent), AT)
        else {
            panic!("expected send");
        };
        let left = n.deadline - Instant::now();
        assert!(
            left > Duration::from_secs(350) && left <= Duration::from_secs(360),
            "{left:?}"
        );
    }

    #[test]
    fn a_customer_without_subscription_is_skipped_before_routing() {
        use crate::eligibility::{DefaultPolicy, Preference, Table};
        let table = Table::new(DefaultPolicy::Subscribed);
        table.set("c-1", Preference::OptedOut);
        let mut i = intake_with(Eligibility::new(table));
        // An unroutable number too: eligibility comes first.
        match i.decide(&event("+33612345678", "en", "x"), AT) {
            Decision::Skip { reason, meta } => {
                assert_eq!(reason, "opted_out");
                assert_eq!(meta.event_id, "evt-1");
            }
            other => panic!("{other:?}"),
        }
        let mut i = intake_with(Eligibility::new(Table::new(DefaultPolicy::NotSubscribed)));
        match i.decide(&event("+447400900123", "en", "x"), AT) {
            Decision::Skip { reason, .. } => assert_eq!(reason, "not_subscribed"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_input_is_rejected() {
        match intake().decide(b"\x00garbage", AT) {
            Decision::Reject {
                event_id: None,
                rejection,
            } => {
                assert_eq!(rejection.code(), "malformed_event")
            }
            other => panic!("{other:?}"),
        }
    }
}
