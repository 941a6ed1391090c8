//! The browser halves of tuning (the native ones are in `native.rs`): `performance.now()` as
//! the clock, and no disk: a browser worker keeps its tuning in memory, per `Gpu`.

use js_sys::wasm_bindgen::{JsCast, JsValue};

/// Where tuning results are kept beyond the `Gpu` that measured them: in a browser, nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TuneCache {
    Memory,
}

impl TuneCache {
    pub fn from_env() -> TuneCache {
        TuneCache::Memory
    }
}

/// Seconds from `performance.now()` (in a page or a Web Worker), or `Date.now()` where there
/// is no `performance`.
pub fn now() -> f64 {
    let global = js_sys::global();
    let performance = js_sys::Reflect::get(&global, &JsValue::from_str("performance")).ok();
    let now = performance.as_ref().and_then(|p| js_sys::Reflect::get(p, &JsValue::from_str("now")).ok());
    if let (Some(performance), Some(now)) = (performance, now.and_then(|f| f.dyn_into::<js_sys::Function>().ok()))
        && let Some(ms) = now.call0(&performance).ok().and_then(|v| v.as_f64())
    {
        return ms / 1e3;
    }
    js_sys::Date::now() / 1e3
}

pub fn load_text(_cache: &TuneCache) -> Option<String> {
    None
}

pub fn store_text(_cache: &TuneCache, _text: &str) -> Result<(), String> {
    Ok(())
}
