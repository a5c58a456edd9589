//! One lifecycle for devbox's registry container: up, renew, prove once and remove, in one place,
//! under the state directory's lock. `registry up|down|renew`, `pull`, `init`, `doctor --fix` and
//! `uninstall` all go through a `Service`; none of them wires the steps together itself.
//!
//! A `Service` is made from the lock (`lock::Held`), so only a run that holds it can change the
//! registry, and its proofs are recorded in the directory that lock guards. What the steps do is
//! in `converge.rs` (make it so), `renew.rs` (when its credentials are due), `proof.rs` (proven
//! once per container); what they should be is decided in `mod.rs`.

use super::converge::{self, Converged};
use super::proof::Proofs;
use super::renew::{self, Renewal};
use crate::aws::Aws;
use crate::config::RegistryConfig;
use crate::engine::Engine;
use crate::lock::Held;
use crate::progress::Progress;

/// The registry of `config` on `engine`, for a run that holds the lock.
pub struct Service<'a> {
    engine: &'a Engine,
    config: &'a RegistryConfig,
    proofs: Proofs,
}

impl<'a> Service<'a> {
    pub fn new(engine: &'a Engine, config: &'a RegistryConfig, lock: &Held) -> Service<'a> {
        Service { engine, config, proofs: Proofs::held(lock) }
    }

    /// Brings the container to the config (`registry up`), connecting to AWS when its storage is
    /// S3, and proves it once. Reports nothing but the registry image's pull, through `progress`.
    pub async fn up(&self, progress: &dyn Progress) -> anyhow::Result<Converged> {
        let s3 = converge::connect_s3(self.config).await?;
        self.up_with(s3.as_ref(), progress).await
    }

    /// `up` with the AWS connection the caller already has (`init` made one in its preflight).
    pub async fn up_with(&self, s3: Option<&Aws>, progress: &dyn Progress) -> anyhow::Result<Converged> {
        converge::converge(self.engine, self.config, s3, &self.proofs, progress).await
    }

    /// Renews the registry's credentials when they are due (`registry renew`, the scheduled job,
    /// `pull`): from its labels alone, asking AWS nothing when they are not.
    pub async fn renew(&self, progress: &dyn Progress) -> anyhow::Result<Renewal> {
        if let Err(nothing) = renew::due(self.engine, self.config).await? {
            return Ok(nothing);
        }
        Ok(Renewal::Renewed(self.up(progress).await?))
    }

    /// Removes the container (`registry down`, `uninstall`); `false` when there was none.
    pub async fn remove(&self) -> anyhow::Result<bool> {
        converge::remove(self.engine, self.config).await
    }
}
