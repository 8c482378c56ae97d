//! The process metrics every Prometheus client library exports under the same names
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), so the dashboards and
//! alerts written for them work unchanged. Read from `/proc` at each scrape; on other systems
//! there are none.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Encodes the process's figures at each scrape.
#[derive(Debug, Default)]
pub(super) struct ProcessCollector;

/// The figures of one scrape; any that could not be read is left out.
#[derive(Debug, Default)]
struct Sample {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
    start_time_seconds: Option<f64>,
}

#[cfg(target_os = "linux")]
fn sample() -> Sample {
    use procfs::process::{LimitValue, Process};
    let mut s = Sample::default();
    let Ok(me) = Process::myself() else { return s };
    let ticks = procfs::ticks_per_second() as f64;
    if let Ok(stat) = me.stat() {
        s.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
        s.resident_bytes = i64::try_from(stat.rss.saturating_mul(procfs::page_size())).ok();
        s.virtual_bytes = i64::try_from(stat.vsize).ok();
        if let Ok(boot) = procfs::boot_time_secs() {
            s.start_time_seconds = Some(boot as f64 + stat.starttime as f64 / ticks);
        }
    }
    s.open_fds = me.fd_count().ok().and_then(|n| i64::try_from(n).ok());
    if let Ok(limits) = me.limits()
        && let LimitValue::Value(n) = limits.max_open_files.soft_limit
    {
        s.max_fds = i64::try_from(n).ok();
    }
    s
}

#[cfg(not(target_os = "linux"))]
fn sample() -> Sample {
    Sample::default()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = sample();
        if let Some(v) = s.cpu_seconds {
            let counter = ConstCounter::new(v);
            counter.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", s.resident_bytes),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", s.virtual_bytes),
            ("process_open_fds", "Number of open file descriptors", s.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors", s.max_fds),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let gauge = ConstGauge::new(v);
                gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
            }
        }
        if let Some(v) = s.start_time_seconds {
            let gauge = ConstGauge::new(v);
            gauge.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
