//! Short-lived containers that run one command and are removed, and commands run inside a running
//! container: the clock helper, the disk probe.

use std::future::Future;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Engine, OneShotOutcome, OneShotSpec, START_TIMEOUT, engine_message, failed};

impl Engine {
    /// Creates, starts and waits for a one-shot container, reads its output, and removes it
    /// whatever happened. Never pulls: an absent image is `NotStarted`.
    pub async fn run_once(&self, spec: &OneShotSpec) -> anyhow::Result<OneShotOutcome> {
        self.removed_after(spec, self.run_once_inner(spec)).await
    }

    /// Like `run_once`, but talks to the container's standard input (`spec.interactive`): it
    /// writes `hello`, waits until the container prints the line `ready` back (so it is running
    /// and reading), then writes what `answer` gives when it is ready, and closes the input.
    /// What runs in the container may take seconds to start; `answer` is what must be on time.
    pub async fn run_once_answering<F, Fut>(
        &self,
        spec: &OneShotSpec,
        hello: &str,
        ready: &str,
        answer: F,
    ) -> anyhow::Result<OneShotOutcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = String>,
    {
        self.removed_after(spec, self.answering_inner(spec, hello, ready, answer)).await
    }

    async fn removed_after(
        &self,
        spec: &OneShotSpec,
        run: impl Future<Output = anyhow::Result<OneShotOutcome>>,
    ) -> anyhow::Result<OneShotOutcome> {
        let outcome = run.await;
        // Removed on every path, so a failed helper leaves nothing behind.
        let removed = self.remove_container(&spec.name).await;
        let outcome = outcome?;
        removed?;
        Ok(outcome)
    }

    /// Creates and starts it; `Err(reason)` when the engine refused either.
    async fn create_and_start(&self, spec: &OneShotSpec, before_start: bool) -> anyhow::Result<Result<(), String>> {
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(spec.entrypoint.clone()),
            cmd: Some(spec.args.clone()),
            user: Some(spec.user.clone()),
            labels: Some(spec.labels.clone()),
            open_stdin: spec.interactive.then_some(true),
            stdin_once: spec.interactive.then_some(true),
            attach_stdin: spec.interactive.then_some(true),
            attach_stdout: spec.interactive.then_some(true),
            attach_stderr: spec.interactive.then_some(true),
            host_config: Some(HostConfig {
                cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
                network_mode: spec.network_none.then(|| "none".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let what = format!("creating container {}", spec.name);
        if let Err(e) = self.call_raw(&what, self.docker.create_container(Some(options), body)).await? {
            return Ok(Err(engine_message(&e)));
        }
        if before_start {
            return Ok(Ok(()));
        }
        self.start_created(spec).await
    }

    async fn start_created(&self, spec: &OneShotSpec) -> anyhow::Result<Result<(), String>> {
        let what = format!("starting container {}", spec.name);
        let start = self.docker.start_container(&spec.name, None);
        Ok(self.call_raw_for(START_TIMEOUT, &what, start).await?.map_err(|e| engine_message(&e)))
    }

    async fn exit_code(&self, name: &str) -> anyhow::Result<i64> {
        let mut wait = std::pin::pin!(self.docker.wait_container(name, None));
        let what = format!("waiting for container {name}");
        match self.within(&what, wait.next()).await? {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(failed(&what, &e)),
            None => anyhow::bail!("{what} failed: the engine ended the wait without an exit code"),
        }
    }

    async fn run_once_inner(&self, spec: &OneShotSpec) -> anyhow::Result<OneShotOutcome> {
        if let Err(reason) = self.create_and_start(spec, false).await? {
            return Ok(OneShotOutcome::NotStarted { reason });
        }
        let code = self.exit_code(&spec.name).await?;
        let mut output = String::new();
        let mut lines = std::pin::pin!(self.logs(&spec.name, "all", false));
        while let Some(line) = self.within("reading the container's logs", lines.next()).await? {
            output.push_str(&line?);
        }
        Ok(OneShotOutcome::Exited { code, output: output.trim().to_string() })
    }

    async fn answering_inner<F, Fut>(
        &self,
        spec: &OneShotSpec,
        hello: &str,
        ready: &str,
        answer: F,
    ) -> anyhow::Result<OneShotOutcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = String>,
    {
        if let Err(reason) = self.create_and_start(spec, true).await? {
            return Ok(OneShotOutcome::NotStarted { reason });
        }
        // Attached before it starts, so nothing it prints is missed.
        let options =
            AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).build();
        let what = format!("attaching to container {}", spec.name);
        let attached = self.call(&what, self.docker.attach_container(&spec.name, Some(options))).await?;
        let (mut output, mut input) = (attached.output, attached.input);
        if let Err(reason) = self.start_created(spec).await? {
            return Ok(OneShotOutcome::NotStarted { reason });
        }
        let writing = format!("writing to container {}", spec.name);
        self.within(&writing, input.write_all(hello.as_bytes())).await??;
        self.within(&writing, input.flush()).await??;
        let mut said = String::new();
        let reading = format!("waiting for container {} to say {ready:?}", spec.name);
        while !said.lines().any(|line| line.trim() == ready) {
            match self.within(&reading, output.next()).await? {
                Some(Ok(chunk)) => said.push_str(&chunk.to_string()),
                Some(Err(e)) => return Err(failed(&reading, &e)),
                // It ended before it was ready: its exit code and output say why.
                None => {
                    let code = self.exit_code(&spec.name).await?;
                    return Ok(OneShotOutcome::Exited { code, output: said.trim().to_string() });
                }
            }
        }
        let text = answer().await;
        self.within(&writing, input.write_all(text.as_bytes())).await??;
        self.within(&writing, input.flush()).await??;
        self.within(&writing, input.shutdown()).await??;
        while let Some(chunk) = self.within(&reading, output.next()).await? {
            said.push_str(&chunk.map_err(|e| failed(&reading, &e))?.to_string());
        }
        let code = self.exit_code(&spec.name).await?;
        let output = said.lines().filter(|line| line.trim() != ready).collect::<Vec<_>>().join("\n");
        Ok(OneShotOutcome::Exited { code, output: output.trim().to_string() })
    }

    /// Runs `cmd` inside the running container `name` (as its own user) and returns its exit code
    /// and output; `None` when there is no such running container.
    pub async fn exec(&self, name: &str, cmd: &[&str]) -> anyhow::Result<Option<(i64, String)>> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let what = format!("running {} in container {name}", cmd.join(" "));
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let created = match self.call_raw(&what, self.docker.create_exec(name, options)).await? {
            Ok(created) => created,
            // 404: no such container; 409: it is not running.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. }) => return Ok(None),
            Err(e) => return Err(failed(&what, &e)),
        };
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut stream, .. } =
            self.call(&what, self.docker.start_exec(&created.id, None)).await?
        {
            while let Some(chunk) = self.within(&what, stream.next()).await? {
                output.push_str(&chunk.map_err(|e| failed(&what, &e))?.to_string());
            }
        }
        let inspected = self.call(&what, self.docker.inspect_exec(&created.id)).await?;
        Ok(Some((inspected.exit_code.unwrap_or(-1), output.trim().to_string())))
    }
}
