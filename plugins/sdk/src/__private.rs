//! Glue between the generated component bindings and the SDK. Not public API: used by
//! [`export_transform!`](crate::export_transform).

#[cfg(not(target_arch = "wasm32"))]
use crate::log::Level;

#[cfg(target_arch = "wasm32")]
pub use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn host_log(level: Level, message: &str) {
    eprintln!("[{level:?}] {message}");
}

/// Exports a [`Transform`](crate::Transform) type as the plugin's `transformer` interface.
///
/// Expands to nothing off wasm, so the crate's native unit tests need no component tooling.
#[macro_export]
macro_rules! export_transform {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __WeirExport;
            impl $crate::__private::Guest for __WeirExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$ty>(config)
                }
                fn transform(batch: $crate::__private::Batch) -> $crate::__private::OutputBatch {
                    $crate::__private::transform::<$ty>(batch)
                }
            }
    $crate::__private::bindings::__weir_export_world!(__WeirExport with_types_in $crate::__private::bindings);
        };
    };
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::any::Any;
    use std::cell::RefCell;

    use crate::log::Level;
    use crate::wire::{self, Outcome};
    use crate::{Config, Emitter, Transform};

    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit/v0.1.0",
            world: "weir:transform/plugin@0.1.0",
            default_bindings_module: "weir_plugin::__private::bindings",
            pub_export_macro: true,
            export_macro_name: "__weir_export_world",
        });
    }

    pub use bindings::exports::weir::transform::transformer::Guest;
    use bindings::weir::transform::types as t;
    pub use bindings::weir::transform::types::{Batch, OutputBatch};

    thread_local! {
        static STATE: RefCell<Option<Box<dyn Any>>> = RefCell::new(None);
    }

    pub fn host_log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => t::Level::Trace,
            Level::Debug => t::Level::Debug,
            Level::Info => t::Level::Info,
            Level::Warn => t::Level::Warn,
            Level::Error => t::Level::Error,
        };
        bindings::weir::transform::log::log(level, crate::wire::current_record(), message);
    }

    pub fn init<T: Transform>(config: Vec<(String, String)>) -> Result<(), String> {
        let plugin = T::init(&Config::from_pairs(config))?;
        STATE.with(|s| *s.borrow_mut() = Some(Box::new(plugin)));
        Ok(())
    }

    fn span(s: t::Span) -> wire::Span {
        wire::Span { start: s.start, len: s.len }
    }

    pub fn transform<T: Transform>(batch: Batch) -> OutputBatch {
        let mut out = Emitter::default();
        let outcomes = STATE.with(|s| {
            let mut state = s.borrow_mut();
            match state.as_mut().and_then(|b| b.downcast_mut::<T>()) {
                None => vec![Outcome::Reject("plugin used before init".into()); batch.records.len()],
                Some(plugin) => {
                    let text = batch.text.as_str();
                    let attrs = &batch.attributes;
                    let records = batch.records.iter().map(|r| {
                        let first = r.first_attribute as usize;
                        let range = attrs.get(first..first.saturating_add(r.attribute_count as usize)).unwrap_or(&[]);
                        wire::unpack(
                            text,
                            span(r.id),
                            span(r.body),
                            range.iter().map(|a| wire::Attr { key: span(a.key), value: span(a.value) }),
                        )
                    });
                    wire::run_batch(plugin, records, &mut out)
                }
            }
        });
        let tspan = |s: wire::Span| t::Span { start: s.start, len: s.len };
        OutputBatch {
            // serde_json and `&str` copies only ever write UTF-8.
            text: String::from_utf8(out.text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            records: out
                .records
                .iter()
                .map(|r| t::OutputRecord {
                    body: tspan(r.body),
                    first_attribute: r.first_attribute,
                    attribute_count: r.attribute_count,
                })
                .collect(),
            attributes: out
                .attributes
                .iter()
                .map(|a| t::Attribute { key: tspan(a.key), value: tspan(a.value) })
                .collect(),
            outcomes: outcomes
                .into_iter()
                .map(|o| match o {
                    Outcome::Emit(n) => t::Outcome::Emit(n),
                    Outcome::Reject(reason) => t::Outcome::Reject(reason),
                })
                .collect(),
        }
    }
}
