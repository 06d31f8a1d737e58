//! Classification of SMPP `command_status` values — the one place carrier outcomes are judged.

/// What a rejecting `command_status` asks the sender to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// `ESME_RTHROTTLED` (0x58): over the carrier's rate; slow down and retry, not a failure.
    Throttled,
    /// `ESME_RMSGQFUL` (0x14): the SMSC's queue is full; back off and retry, not a failure.
    QueueFull,
    /// A transient or session-level error; retry (with backoff, possibly on another bind).
    Retryable,
    /// The message itself is wrong (address, length, parameters) or refused by policy;
    /// retrying the same submit cannot succeed.
    Permanent,
}

/// Classifies a rejecting `command_status` — the one place carrier outcomes are classified.
///
/// - Throttled: 0x58. QueueFull: 0x14.
/// - Permanent: message-level faults — 0x01 message length, 0x02 command length, 0x03 command
///   id, 0x06 priority flag, 0x07 registered delivery flag, 0x0A source address, 0x0B
///   destination address, 0x0C message id, 0x33 number of destinations, 0x40 distribution
///   list, 0x42 destination flag, 0x43 esm_class, 0x44 submit to distribution list, 0x48/0x49
///   source TON/NPI, 0x50/0x51 destination TON/NPI, 0x53 system type, 0x54 replace flag,
///   0x55 number of messages, 0x61 schedule time, 0x62 validity period, 0x63 permanent
///   application error, 0x65 rejected by application, 0xC0..=0xC4 TLV errors.
/// - Retryable: everything else — 0x08 system error, 0x45 submit failed, 0x64 temporary
///   application error, 0xFF unknown error, session-level errors (0x04 bind status, 0x05
///   already bound, 0x0D..=0x0F bind/credential errors), 0x00 (a success code where a failure
///   was expected is unexpected, not a verdict on the message), and vendor-specific codes
///   (0x400..=0x4FF). Unknown codes are retryable so a bounded retry gets a chance rather
///   than failing a message on a code nobody has seen.
pub fn classify(command_status: u32) -> StatusClass {
    match command_status {
        0x58 => StatusClass::Throttled,
        0x14 => StatusClass::QueueFull,
        0x01
        | 0x02
        | 0x03
        | 0x06
        | 0x07
        | 0x0A
        | 0x0B
        | 0x0C
        | 0x33
        | 0x40
        | 0x42
        | 0x43
        | 0x44
        | 0x48
        | 0x49
        | 0x50
        | 0x51
        | 0x53
        | 0x54
        | 0x55
        | 0x61
        | 0x62
        | 0x63
        | 0x65
        | 0xC0..=0xC4 => StatusClass::Permanent,
        _ => StatusClass::Retryable,
    }
}
