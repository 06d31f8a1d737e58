//! Message templates: parsed once, rendered per debit without re-parsing.
//!
//! Placeholders: `{bank}`, `{card_last4}`, `{amount}`, `{merchant}`, `{time}`, `{balance}`,
//! `{support}`; `{?balance}...{/balance}` is rendered only when the event carries a balance.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::config::TemplatesConfig;
use crate::event::DebitEvent;

/// Built-in templates; configuration can replace them or add locales.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "en",
        "{bank}: card ending {card_last4} was debited {amount} at {merchant} on {time}.\
         {?balance} Available balance {balance}.{/balance} Not you? Call {support}.",
    ),
    (
        "zh-CN",
        "【{bank}】您尾号{card_last4}的卡于{time}在{merchant}消费{amount}。\
         {?balance}可用余额{balance}。{/balance}如非本人交易，请致电{support}。",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Bank,
    CardLast4,
    Amount,
    Merchant,
    Time,
    Balance,
    Support,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
    /// Pieces rendered only when the event has a balance.
    IfBalance(Vec<Piece>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{0}}}")]
    Unknown(String),
    #[error("a '{{' is not closed")]
    Unclosed,
    #[error("{{?balance}} is not closed by {{/balance}}")]
    UnclosedSection,
    #[error("{{/balance}} without {{?balance}}")]
    StraySectionEnd,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut stack: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut rest = src;
        while let Some(open) = rest.find('{') {
            let (text, after) = rest.split_at(open);
            push_text(stack.last_mut(), text);
            let close = after.find('}').ok_or(TemplateError::Unclosed)?;
            let name = &after[1..close];
            rest = &after[close + 1..];
            let piece = match name {
                "bank" => Piece::Var(Var::Bank),
                "card_last4" => Piece::Var(Var::CardLast4),
                "amount" => Piece::Var(Var::Amount),
                "merchant" => Piece::Var(Var::Merchant),
                "time" => Piece::Var(Var::Time),
                "balance" => Piece::Var(Var::Balance),
                "support" => Piece::Var(Var::Support),
                "?balance" => {
                    stack.push(Vec::new());
                    continue;
                }
                "/balance" => {
                    if stack.len() < 2 {
                        return Err(TemplateError::StraySectionEnd);
                    }
                    let inner = stack.pop().unwrap_or_default();
                    Piece::IfBalance(inner)
                }
                other => return Err(TemplateError::Unknown(other.to_owned())),
            };
            if let Some(top) = stack.last_mut() {
                top.push(piece);
            }
        }
        push_text(stack.last_mut(), rest);
        if stack.len() != 1 {
            return Err(TemplateError::UnclosedSection);
        }
        Ok(Template {
            pieces: stack.pop().unwrap_or_default(),
        })
    }

    fn render_into(&self, pieces: &[Piece], ctx: &Ctx<'_>, out: &mut String) {
        for p in pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::IfBalance(inner) => {
                    if ctx.ev.balance_minor.is_some() {
                        self.render_into(inner, ctx, out);
                    }
                }
                Piece::Var(v) => match v {
                    Var::Bank => out.push_str(ctx.bank),
                    Var::Support => out.push_str(ctx.support),
                    Var::CardLast4 => out.push_str(&ctx.ev.card_last4),
                    Var::Merchant => out.push_str(&ctx.ev.merchant),
                    Var::Amount => money(out, &ctx.ev.currency, ctx.ev.amount_minor),
                    Var::Balance => {
                        if let Some(b) = ctx.ev.balance_minor {
                            money(out, &ctx.ev.currency, b);
                        }
                    }
                    Var::Time => time_text(out, ctx.ev.occurred_at, ctx.style),
                },
            }
        }
    }
}

fn push_text(top: Option<&mut Vec<Piece>>, text: &str) {
    if let (Some(top), false) = (top, text.is_empty()) {
        top.push(Piece::Text(text.to_owned()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    En,
    Zh,
}

struct Ctx<'a> {
    ev: &'a DebitEvent,
    bank: &'a str,
    support: &'a str,
    style: Style,
}

/// All templates of a configuration, by locale.
#[derive(Debug, Clone)]
pub struct Templates {
    by_locale: BTreeMap<String, (Template, Style)>,
    fallback: String,
    bank: String,
    support: String,
}

impl Templates {
    /// Built-ins overlaid with the configured ones (validated by config already).
    pub fn new(cfg: &TemplatesConfig) -> Result<Templates, TemplateError> {
        let mut by_locale = BTreeMap::new();
        let builtin = BUILTIN.iter().map(|(l, t)| (*l, *t));
        let configured = cfg.locales.iter().map(|(l, t)| (l.as_str(), t.as_str()));
        for (locale, text) in builtin.chain(configured) {
            let style = if locale.to_ascii_lowercase().starts_with("zh") {
                Style::Zh
            } else {
                Style::En
            };
            by_locale.insert(locale.to_ascii_lowercase(), (Template::parse(text)?, style));
        }
        Ok(Templates {
            by_locale,
            fallback: cfg.fallback_locale.to_ascii_lowercase(),
            bank: cfg.bank.clone(),
            support: cfg.support.clone(),
        })
    }

    /// Renders the message for `ev`: exact locale, then its language, then the fallback.
    pub fn render(&self, ev: &DebitEvent) -> String {
        let locale = ev.locale.to_ascii_lowercase();
        let lang = locale.split(['-', '_']).next().unwrap_or("");
        let found = self
            .by_locale
            .get(&locale)
            .or_else(|| self.by_locale.get(lang))
            .or_else(|| {
                // `zh` finds `zh-cn`: a language with a single regional template.
                self.by_locale
                    .range(format!("{lang}-")..)
                    .next()
                    .filter(|(k, _)| k.split(['-', '_']).next() == Some(lang))
                    .map(|(_, v)| v)
            })
            .or_else(|| self.by_locale.get(&self.fallback));
        let mut out = String::with_capacity(192);
        if let Some((t, style)) = found {
            let ctx = Ctx {
                ev,
                bank: &self.bank,
                support: &self.support,
                style: *style,
            };
            t.render_into(&t.pieces, &ctx, &mut out);
        }
        out
    }
}

/// Minor-unit exponent of an ISO 4217 currency (2 unless listed).
fn exponent(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    }
}

/// `GBP 1,234.56`.
fn money(out: &mut String, currency: &str, minor: i64) {
    let exp = exponent(currency);
    let scale = 10i64.pow(exp);
    let (sign, abs) = if minor < 0 {
        ("-", minor.unsigned_abs())
    } else {
        ("", minor as u64)
    };
    let major = abs / scale as u64;
    let frac = abs % scale as u64;
    out.push_str(currency);
    out.push(' ');
    out.push_str(sign);
    let digits = major.to_string();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if exp > 0 {
        let _ = write!(out, ".{frac:0width$}", width = exp as usize);
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `25 Nov 19:05 UTC` or `11月25日19:05`, in UTC.
fn time_text(out: &mut String, t: OffsetDateTime, style: Style) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let m = u8::from(t.month());
    let _ = match style {
        Style::En => write!(
            out,
            "{} {} {:02}:{:02} UTC",
            t.day(),
            MONTHS[usize::from(m - 1)],
            t.hour(),
            t.minute()
        ),
        Style::Zh => write!(out, "{}月{}日{:02}:{:02}", m, t.day(), t.hour(), t.minute()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn event(locale: &str, balance: Option<i64>) -> DebitEvent {
        DebitEvent {
            schema_version: 1,
            event_id: "e".into(),
            transaction_id: "t".into(),
            occurred_at: datetime!(2026-11-25 19:05:00 UTC),
            customer_ref: "c".into(),
            destination: "+447400900123".into(),
            card_last4: "4242".into(),
            amount_minor: 123_456,
            currency: "GBP".into(),
            merchant: "Coffee House".into(),
            locale: locale.into(),
            balance_minor: balance,
            class: None,
        }
    }

    fn templates() -> Templates {
        Templates::new(&TemplatesConfig::default()).expect("built-ins parse")
    }

    #[test]
    fn english_with_and_without_balance() {
        let t = templates();
        assert_eq!(
            t.render(&event("en-GB", Some(99))),
            "Pigeon Bank: card ending 4242 was debited GBP 1,234.56 at Coffee House on \
             25 Nov 19:05 UTC. Available balance GBP 0.99. Not you? Call +44 20 7946 0000."
        );
        let without = t.render(&event("en", None));
        assert!(!without.contains("balance"), "{without}");
        assert!(without
            .ends_with("at Coffee House on 25 Nov 19:05 UTC. Not you? Call +44 20 7946 0000."));
    }

    #[test]
    fn chinese_locale_and_language_fallbacks() {
        let t = templates();
        let zh = t.render(&event("zh-CN", None));
        assert!(
            zh.starts_with(
                "【Pigeon Bank】您尾号4242的卡于11月25日19:05在Coffee House消费GBP 1,234.56。"
            ),
            "{zh}"
        );
        assert_eq!(
            t.render(&event("zh", None)),
            zh,
            "language finds its regional template"
        );
        assert_eq!(t.render(&event("ZH_cn", None)), zh);
        assert!(t
            .render(&event("xx-YY", None))
            .starts_with("Pigeon Bank: card ending"));
    }

    #[test]
    fn money_uses_the_currency_exponent() {
        let mut s = String::new();
        money(&mut s, "JPY", 1_234_567);
        assert_eq!(s, "JPY 1,234,567");
        s.clear();
        money(&mut s, "KWD", 5);
        assert_eq!(s, "KWD 0.005");
        s.clear();
        money(&mut s, "EUR", 100);
        assert_eq!(s, "EUR 1.00");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert_eq!(
            Template::parse("hi {name}"),
            Err(TemplateError::Unknown("name".into()))
        );
        assert_eq!(Template::parse("hi {bank"), Err(TemplateError::Unclosed));
        assert_eq!(
            Template::parse("{?balance} x"),
            Err(TemplateError::UnclosedSection)
        );
        assert_eq!(
            Template::parse("x {/balance}"),
            Err(TemplateError::StraySectionEnd)
        );
    }
}
