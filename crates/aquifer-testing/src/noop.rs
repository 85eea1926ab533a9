//! A manager whose connections cost nothing, for measuring the engine alone.

use aquifer_core::{Descriptor, Manager};

/// A [`Manager`] whose connections are plain numbers that connect and validate at once: what a benchmark or a
/// profile of the engine runs on, so that nothing but the pool's own work is measured. Its descriptor names an
/// `other_sql` server at the address given.
#[derive(Debug, Clone, Copy)]
pub struct NoopManager {
    address: &'static str,
}

impl NoopManager {
    /// A manager whose descriptor's address is `address` (say, the benchmark it serves).
    pub const fn new(address: &'static str) -> Self {
        NoopManager { address }
    }
}

#[async_trait::async_trait]
impl Manager for NoopManager {
    type Connection = u64;
    type Error = std::io::Error;
    async fn connect(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
    async fn validate(&self, _: &mut u64) -> Result<(), std::io::Error> {
        Ok(())
    }
    fn descriptor(&self) -> Descriptor {
        Descriptor::new("other_sql").address(self.address)
    }
}
