//! The D programs the generator runs, embedded at build time from `d-scripts/generator/`.
//! Each program's header comment says which aggregation feeds which frame field; the names
//! of aggregations and the order of their keys are the contract with [`crate::frames`].

/// One D program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DProgram {
    /// Its file name under `d-scripts/generator/`.
    pub file: &'static str,
    /// Its source.
    pub text: &'static str,
    /// Whether it needs the global zone (it reads kernel memory: `dtrace_kernel`).
    pub global_zone_only: bool,
}

/// Every program, in the order they are compiled.
pub const PROGRAMS: &[DProgram] = &[
    DProgram { file: "profile.d", text: include_str!("../../d-scripts/generator/profile.d"), global_zone_only: false },
    DProgram { file: "ticks.d", text: include_str!("../../d-scripts/generator/ticks.d"), global_zone_only: false },
    DProgram { file: "syscall.d", text: include_str!("../../d-scripts/generator/syscall.d"), global_zone_only: false },
    DProgram { file: "vminfo.d", text: include_str!("../../d-scripts/generator/vminfo.d"), global_zone_only: false },
    DProgram { file: "runqueue.d", text: include_str!("../../d-scripts/generator/runqueue.d"), global_zone_only: true },
];

/// The programs to run in the global zone (`true`) or in a non-global zone (`false`).
pub fn programs_for(global_zone: bool) -> Vec<DProgram> {
    PROGRAMS.iter().copied().filter(|p| global_zone || !p.global_zone_only).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The aggregation names the programs define (`@name`), in the order they appear.
    fn aggregation_names(program: &DProgram) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        let text = program.text;
        let mut rest = text;
        while let Some(at) = rest.find('@') {
            let tail = &rest[at + 1..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            let name = &tail[..end];
            // Only aggregations in code, not the ones the header comment mentions.
            let line_start = text[..text.len() - rest.len() + at].rfind('\n').map_or(0, |i| i + 1);
            let line = text[line_start..].trim_start();
            if !name.is_empty() && !line.starts_with('*') && !line.starts_with("/*") && !names.contains(&name) {
                names.push(name);
            }
            rest = &tail[end..];
        }
        names
    }

    #[test]
    fn programs_define_the_aggregations_frames_read() {
        let all: Vec<&str> = PROGRAMS.iter().flat_map(aggregation_names).collect();
        assert_eq!(all, ["cpu", "process", "ticks", "syscall_latency", "vminfo", "runqueue"]);
        for name in crate::frames::AGGREGATIONS {
            assert!(all.contains(name), "no D program defines @{name}");
        }
    }

    #[test]
    fn non_global_zones_skip_kernel_memory() {
        assert_eq!(programs_for(true).len(), PROGRAMS.len());
        assert!(programs_for(false).iter().all(|p| p.file != "runqueue.d"));
    }
}
