//! The cores a config names, against the CPUs the process may run on.

use crate::{Config, ConfigError};

impl Config {
    /// Checks that every core the config names (lcores, generator, sink) is one of
    /// `available`, the CPUs this process may run on; the error names the key of the first
    /// that is not. Call it before pinning threads.
    pub fn check_cores(&self, available: &[usize]) -> Result<(), ConfigError> {
        let lcores = self
            .lcores
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("lcores[{i}].core"), l.core));
        let helpers = [
            self.generator
                .map(|g| ("generator.core".to_owned(), g.core)),
            self.sink.map(|s| ("sink.core".to_owned(), s.core)),
        ];
        for (key, core) in lcores.chain(helpers.into_iter().flatten()) {
            if !available.contains(&(core as usize)) {
                return Err(ConfigError::Invalid {
                    file: self.name.clone(),
                    key,
                    message: format!(
                        "CPU {core} does not exist or is not available to this process \
                         (available: {})",
                        cpu_list(available)
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `[0, 1, 2, 5]` as `0-2,5` (sorted first); `none` when empty.
fn cpu_list(cpus: &[usize]) -> String {
    let mut cpus = cpus.to_vec();
    cpus.sort_unstable();
    cpus.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        while i + 1 < cpus.len() && cpus[i + 1] == cpus[i] + 1 {
            i += 1;
        }
        out.push(if cpus[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", cpus[i])
        });
        i += 1;
    }
    if out.is_empty() {
        "none".to_owned()
    } else {
        out.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_ranges() {
        assert_eq!(cpu_list(&[5, 0, 1, 2]), "0-2,5");
        assert_eq!(cpu_list(&[3]), "3");
        assert_eq!(cpu_list(&[]), "none");
    }
}
