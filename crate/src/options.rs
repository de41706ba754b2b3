//! The instance option, metrics and abort objects that cross the N-API boundary, and the reading
//! of call budgets from them (engine and WASI options live with the engine and WASI). lib/options.ts validates every option where it enters and applies the
//! defaults; this side re-checks only what could otherwise panic or overflow (a `timeoutMs` of
//! `1e300` must not reach `Duration::from_secs_f64`).

use std::sync::Arc;

use napi_derive::napi;

use crate::errors::Failure;
use crate::js::{Js, Kind, Value};
use crate::limits::{LimitsConfig, MemoryMetrics};
use crate::metrics::Metrics;
use crate::runtime::abort::{Abort, AbortFlag};
use crate::runtime::dispatcher;
use crate::store::Budget;

/// Largest fuel budget: the largest integer a JS number holds exactly.
pub const MAX_FUEL: f64 = 9_007_199_254_740_991.0;

/// Largest `timeoutMs`: what `setTimeout` accepts (about 24.8 days); longer is a mistake.
pub const MAX_TIMEOUT_MS: f64 = 2_147_483_647.0;

/// Instance options after the TS layer applied defaults (lib/options.ts owns the defaults).
#[napi(object)]
pub struct NativeInstanceOptions {
    /// Total bytes of all linear memories (`limits.memoryBytes`).
    pub memory_bytes: f64,
    pub table_elements: u32,
    pub instances: u32,
    pub tables: u32,
    pub memories: u32,
    /// Component resource handles the instance may hold at once.
    pub resource_handles: u32,
    /// A denied `memory.grow` traps (MemoryLimitError) instead of returning -1.
    pub trap_on_memory_denial: bool,
    /// Default fuel budget per call.
    pub fuel: Option<f64>,
    /// Default wall-clock deadline per call, in milliseconds.
    pub timeout_ms: Option<f64>,
    /// WASI to link; `None` links none (a WASI import is then a LinkError).
    pub wasi: Option<crate::wasi::NativeWasiOptions>,
}

impl NativeInstanceOptions {
    /// The instance's default per-call budget, for an instance created in `js`'s environment on
    /// an engine with or without fuel metering (a budget it could not meter is refused here, not
    /// left out of the start function and then refused at every call).
    pub fn defaults(&self, js: Js, fuel_enabled: bool) -> Result<Budget, Failure> {
        let fuel = fuel(self.fuel)?;
        if fuel.is_some() && !fuel_enabled {
            return Err(no_fuel_metering());
        }
        Ok(Budget {
            fuel,
            timeout_ms: timeout_ms(self.timeout_ms)?,
            abort: Abort::of_environment(dispatcher::stopping_flag(js)),
        })
    }

    pub fn limits(&self) -> Result<LimitsConfig, Failure> {
        if !(self.memory_bytes >= 0.0 && self.memory_bytes.fract() == 0.0 && self.memory_bytes <= MAX_FUEL) {
            return Err(Failure::Type(format!(
                "limits.memoryBytes: expected a non-negative integer, got {}",
                self.memory_bytes
            )));
        }
        Ok(LimitsConfig {
            memory_bytes: self.memory_bytes as usize,
            table_elements: self.table_elements as usize,
            instances: self.instances as usize,
            tables: self.tables as usize,
            memories: self.memories as usize,
            trap_on_memory_denial: self.trap_on_memory_denial,
        })
    }
}

/// `metrics().memory`
#[napi(object)]
pub struct MemoryMetricsInfo {
    pub current_bytes: f64,
    pub peak_bytes: f64,
    pub limit_bytes: f64,
    pub denied_growths: f64,
}

/// `metrics().fuel`
#[napi(object)]
pub struct FuelMetricsInfo {
    pub last_call_consumed: f64,
    pub total_consumed: f64,
}

/// `metrics()`
#[napi(object)]
pub struct InstanceMetrics {
    pub memory: MemoryMetricsInfo,
    pub fuel: FuelMetricsInfo,
    pub calls: f64,
    pub traps: f64,
}

impl From<Metrics> for InstanceMetrics {
    fn from(metrics: Metrics) -> Self {
        let MemoryMetrics {
            current_bytes,
            peak_bytes,
            limit_bytes,
            denied_growths,
        } = metrics.memory;
        InstanceMetrics {
            memory: MemoryMetricsInfo {
                current_bytes: current_bytes as f64,
                peak_bytes: peak_bytes as f64,
                limit_bytes: limit_bytes as f64,
                denied_growths: denied_growths as f64,
            },
            fuel: FuelMetricsInfo {
                last_call_consumed: metrics.last_call_fuel as f64,
                total_consumed: metrics.total_fuel as f64,
            },
            calls: metrics.calls as f64,
            traps: metrics.traps as f64,
        }
    }
}

/// The native side of one call's AbortSignal: `abort()` makes the epoch callback stop the guest.
#[napi]
pub struct NativeAbortHandle {
    flag: Arc<AbortFlag>,
}

#[napi]
impl NativeAbortHandle {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NativeAbortHandle {
            flag: Arc::new(AbortFlag::default()),
        }
    }

    /// Requests the call to stop at the next epoch tick, and wakes it if it waits.
    #[napi]
    pub fn abort(&self) {
        self.flag.raise();
    }
}

impl NativeAbortHandle {
    pub fn flag(&self) -> Arc<AbortFlag> {
        self.flag.clone()
    }
}

/// A fuel budget: a non-negative integer a JS number holds exactly.
fn fuel(value: Option<f64>) -> Result<Option<u64>, Failure> {
    match value {
        Some(value) if !(value >= 0.0 && value.fract() == 0.0 && value <= MAX_FUEL) => Err(Failure::OptionAt {
            path: "fuel",
            message: format!("option \"fuel\": expected a non-negative integer up to 2**53 - 1, got {value}"),
        }),
        other => Ok(other.map(|value| value as u64)),
    }
}

/// A deadline: a positive number of milliseconds up to [`MAX_TIMEOUT_MS`].
fn timeout_ms(value: Option<f64>) -> Result<Option<f64>, Failure> {
    match value {
        Some(value) if !(value > 0.0 && value <= MAX_TIMEOUT_MS) => Err(Failure::OptionAt {
            path: "timeoutMs",
            message: format!("option \"timeoutMs\": expected a positive number up to {MAX_TIMEOUT_MS}, got {value}"),
        }),
        other => Ok(other),
    }
}

fn no_fuel_metering() -> Failure {
    Failure::OptionAt {
        path: "fuel",
        message: "option \"fuel\": this engine was created without fuel metering (new Engine({ fuel: true }))".into(),
    }
}

/// The budget for one call: the per-call values win over the instance's `defaults`.
pub fn call_budget(
    defaults: &Budget,
    fuel_enabled: bool,
    fuel_value: Option<f64>,
    timeout_value: Option<f64>,
    abort: Option<Arc<AbortFlag>>,
) -> Result<Budget, Failure> {
    let fuel = fuel(fuel_value)?.or(defaults.fuel);
    if fuel.is_some() && !fuel_enabled {
        return Err(no_fuel_metering());
    }
    Ok(Budget {
        fuel,
        timeout_ms: timeout_ms(timeout_value)?.or(defaults.timeout_ms),
        abort: defaults.abort.with_signal(abort),
    })
}

/// The budget for one call from two JS values (`undefined` or `null` for the instance's default).
pub fn call_budget_from_js(
    js: Js,
    defaults: &Budget,
    fuel_enabled: bool,
    fuel: Value,
    timeout_ms: Value,
) -> Result<Budget, Failure> {
    let read = |name: &str, value| -> Result<Option<f64>, Failure> {
        match js.kind(value)? {
            Kind::Undefined | Kind::Null => Ok(None),
            Kind::Number => Ok(Some(js.get_f64(value)?)),
            _ => Err(Failure::Type(format!(
                "option \"{name}\": expected a number, got {}",
                js.describe(value)
            ))),
        }
    };
    call_budget(
        defaults,
        fuel_enabled,
        read("fuel", fuel)?,
        read("timeoutMs", timeout_ms)?,
        None,
    )
}
