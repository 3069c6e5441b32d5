//! `courtyard:plugin/log`: structured log records, tagged with the call.

use super::{CallState, HostState};
use crate::bindings::courtyard::plugin::log;
use crate::{LogLevel, LogRecord};
use wasmtime::component::{HasSelf, Linker};

/// At most this many records are kept per call; the rest are counted and dropped.
pub(crate) const MAX_RECORDS_PER_CALL: usize = 256;
/// Longer messages are cut.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4096;

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl CallState {
    /// Records a log line and sends it to the host's log.
    pub(crate) fn record(
        &mut self,
        level: LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        let message = cut(message, MAX_MESSAGE_BYTES);
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .take(32)
            .map(|(k, v)| (cut(k, 128), cut(v, 1024)))
            .collect();
        let ns = &self.namespace;
        let rendered: String = fields.iter().map(|(k, v)| format!(" {k}={v:?}")).collect();
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(
                    target: "courtyard::plugin",
                    $lvl,
                    community = ns.community(),
                    plugin = ns.plugin(),
                    operation = %self.operation,
                    request_id = %self.request_id,
                    "{message}{rendered}"
                )
            };
        }
        match level {
            LogLevel::Trace => emit!(tracing::Level::TRACE),
            LogLevel::Debug => emit!(tracing::Level::DEBUG),
            LogLevel::Info => emit!(tracing::Level::INFO),
            LogLevel::Warn => emit!(tracing::Level::WARN),
            LogLevel::Error => emit!(tracing::Level::ERROR),
        }
        if self.logs.len() < MAX_RECORDS_PER_CALL {
            self.logs.push(LogRecord {
                level,
                message,
                fields,
            });
        } else {
            self.dropped_logs += 1;
        }
    }
}

impl log::Host for HostState {
    fn write(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.call.record(level, message, fields);
        Ok(())
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
