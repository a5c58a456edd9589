//! Short-lived containers that run one command and are removed, and commands run inside a running
//! container: the clock helper, the disk probe.

use std::future::Future;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Engine, EngineError, OneShotOutcome, OneShotSpec, START_TIMEOUT};

impl Engine {
    /// Creates, starts and waits for a one-shot container, reads its output, and removes it
    /// whatever happened. Never pulls: an absent image is `NotStarted`.
    pub async fn run_once(&self, spec: &OneShotSpec) -> Result<OneShotOutcome, EngineError> {
        let made = Made::default();
        let outcome = self.run_once_inner(spec, &made).await;
        self.removed_after(made, outcome).await
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
    ) -> Result<OneShotOutcome, EngineError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = String>,
    {
        let made = Made::default();
        let outcome = self.answering_inner(spec, hello, ready, answer, &made).await;
        self.removed_after(made, outcome).await
    }

    /// Removes what this run made, by the ID the engine gave it, on every path: a failed helper
    /// leaves nothing behind, and a container of the same name that this run did not make (its
    /// create was refused) is never touched.
    async fn removed_after(
        &self,
        made: Made,
        outcome: Result<OneShotOutcome, EngineError>,
    ) -> Result<OneShotOutcome, EngineError> {
        let removed = match made.id() {
            Some(id) => self.remove_container(&id).await.map(|_| ()),
            None => Ok(()),
        };
        let outcome = outcome?;
        removed?;
        Ok(outcome)
    }

    /// Creates and starts it (only creates it, when `before_start`). A timeout is an error; the
    /// engine's refusal is `NotStarted`, with the engine's words.
    async fn create_and_start(
        &self,
        spec: &OneShotSpec,
        before_start: bool,
        made: &Made,
    ) -> Result<Started, EngineError> {
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
        match self.call_raw(&what, self.docker.create_container(Some(options), body)).await? {
            Ok(created) => made.set(created.id),
            Err(e) => return Ok(Started::Refused(not_started(e))),
        }
        if before_start {
            return Ok(Started::Yes);
        }
        self.start_created(spec).await
    }

    async fn start_created(&self, spec: &OneShotSpec) -> Result<Started, EngineError> {
        let what = format!("starting container {}", spec.name);
        let start = self.docker.start_container(&spec.name, None);
        Ok(match self.call_raw_for(START_TIMEOUT, &what, start).await? {
            Ok(()) => Started::Yes,
            Err(e) => Started::Refused(not_started(e)),
        })
    }

    async fn exit_code(&self, name: &str) -> Result<i64, EngineError> {
        let mut wait = std::pin::pin!(self.docker.wait_container(name, None));
        let what = format!("waiting for container {name}");
        match self.within(&what, wait.next()).await? {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(EngineError::of(&what, &e)),
            None => Err(EngineError::failed(&what, "the engine ended the wait without an exit code")),
        }
    }

    async fn run_once_inner(&self, spec: &OneShotSpec, made: &Made) -> Result<OneShotOutcome, EngineError> {
        if let Started::Refused(outcome) = self.create_and_start(spec, false, made).await? {
            return Ok(outcome);
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
        made: &Made,
    ) -> Result<OneShotOutcome, EngineError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = String>,
    {
        if let Started::Refused(outcome) = self.create_and_start(spec, true, made).await? {
            return Ok(outcome);
        }
        // Attached before it starts, so nothing it prints is missed.
        let options =
            AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).build();
        let what = format!("attaching to container {}", spec.name);
        let attached = self.call(&what, self.docker.attach_container(&spec.name, Some(options))).await?;
        let (mut output, mut input) = (attached.output, attached.input);
        if let Started::Refused(outcome) = self.start_created(spec).await? {
            return Ok(outcome);
        }
        let writing = format!("writing to container {}", spec.name);
        let io = |e: std::io::Error| EngineError::failed(&writing, e);
        self.within(&writing, input.write_all(hello.as_bytes())).await?.map_err(io)?;
        self.within(&writing, input.flush()).await?.map_err(io)?;
        let mut said = String::new();
        let reading = format!("waiting for container {} to say {ready:?}", spec.name);
        while !said.lines().any(|line| line.trim() == ready) {
            match self.within(&reading, output.next()).await? {
                Some(Ok(chunk)) => said.push_str(&chunk.to_string()),
                Some(Err(e)) => return Err(EngineError::of(&reading, &e)),
                // It ended before it was ready: its exit code and output say why.
                None => {
                    let code = self.exit_code(&spec.name).await?;
                    return Ok(OneShotOutcome::Exited { code, output: said.trim().to_string() });
                }
            }
        }
        let text = answer().await;
        self.within(&writing, input.write_all(text.as_bytes())).await?.map_err(io)?;
        self.within(&writing, input.flush()).await?.map_err(io)?;
        self.within(&writing, input.shutdown()).await?.map_err(io)?;
        while let Some(chunk) = self.within(&reading, output.next()).await? {
            said.push_str(&chunk.map_err(|e| EngineError::of(&reading, &e))?.to_string());
        }
        let code = self.exit_code(&spec.name).await?;
        let output = said.lines().filter(|line| line.trim() != ready).collect::<Vec<_>>().join("\n");
        Ok(OneShotOutcome::Exited { code, output: output.trim().to_string() })
    }

    /// Runs `cmd` inside the running container `name` (as its own user) and returns its exit code
    /// and output; `None` when there is no such running container.
    pub async fn exec(&self, name: &str, cmd: &[&str]) -> Result<Option<(i64, String)>, EngineError> {
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
            Err(e) => return Err(EngineError::of(&what, &e)),
        };
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut stream, .. } =
            self.call(&what, self.docker.start_exec(&created.id, None)).await?
        {
            while let Some(chunk) = self.within(&what, stream.next()).await? {
                output.push_str(&chunk.map_err(|e| EngineError::of(&what, &e))?.to_string());
            }
        }
        let inspected = self.call(&what, self.docker.inspect_exec(&created.id)).await?;
        Ok(Some((inspected.exit_code.unwrap_or(-1), output.trim().to_string())))
    }
}

/// The ID of the one-shot container this run made, once the engine has made it.
#[derive(Default)]
struct Made(std::sync::Mutex<Option<String>>);

impl Made {
    fn set(&self, id: String) {
        if let Ok(mut made) = self.0.lock() {
            *made = Some(id);
        }
    }

    fn id(&self) -> Option<String> {
        self.0.lock().ok().and_then(|made| made.clone())
    }
}

/// Whether the engine created and started a one-shot container, or refused: then the outcome says
/// so in the engine's words.
enum Started {
    Yes,
    Refused(OneShotOutcome),
}

/// The engine refused to create or start the container, or the request broke on the way: either
/// way, what was asked never ran.
fn not_started(err: bollard::errors::Error) -> OneShotOutcome {
    OneShotOutcome::NotStarted { reason: super::engine_message(&err) }
}
