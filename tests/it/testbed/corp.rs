//! A company network, per test (`tests/testbed/network/up.sh` installs its parts): S3 over TLS
//! with a private CA (socat in front of an S3 server, a moto of the test's own or Garage, under the name
//! `s3-<tag>.devbox-corp.test`, put in /etc/hosts pointing at 127.0.0.1), the
//! direct path to it closed by an iptables rule for everyone but the proxy's user (`nobody`), and
//! proxies: tinyproxy (plain, optionally asking for Basic credentials) and mitmproxy (TLS
//! inspection, re-signing with a second private CA). Everything goes when the `Corp` is dropped,
//! the /etc/hosts line and the iptables rule included, on failure too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use super::{free_port, wait_until};

/// Where up.sh installs mitmproxy.
const MITMDUMP: &str = "/opt/devbox-testbed/mitmproxy/bin/mitmdump";
/// The user the proxies run as: the one the iptables rule lets through to S3.
const PROXY_USER: &str = "nobody";
/// /etc/hosts is shared by every test thread: one edit at a time.
static HOSTS: Mutex<()> = Mutex::new(());

/// One proxy a test started.
pub struct Proxy {
    pub port: u16,
    /// Its log: tinyproxy's, or mitmdump's output (one line per request it saw).
    pub log: PathBuf,
    /// mitmproxy's CA (the re-signing one), as PEM.
    pub ca: Option<PathBuf>,
}

impl Proxy {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct Corp {
    pub dir: tempfile::TempDir,
    /// The name S3 is reached by, and its TLS port on 127.0.0.1.
    pub s3_name: String,
    pub s3_port: u16,
    /// The private CA that issued S3's certificate.
    pub s3_ca: PathBuf,
    /// Watchers of the processes started here, and the files their processes' IDs are in.
    children: Vec<(Child, PathBuf)>,
    hosts_line: String,
    rules: Vec<Vec<String>>,
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn openssl(args: &[&str]) {
    run("openssl", args);
}

/// A private CA `name` in `dir`: `name.pem` and `name.key`.
fn make_ca(dir: &Path, name: &str, subject: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        key.to_str().expect("utf-8"),
        "-out",
        cert.to_str().expect("utf-8"),
    ]);
    (cert, key)
}

impl Corp {
    /// S3 over TLS at `s3-<tag>.devbox-corp.test`, in front of the S3 server on `backend_port` (a
    /// moto takes that name for a host with `S3Server::moto().host_as_host()`).
    pub fn new(tag: &str, backend_port: u16) -> Corp {
        let dir = tempfile::tempdir().expect("tempdir");
        // The proxies run as nobody and read their configs here.
        run("chmod", &["0755", dir.path().to_str().expect("utf-8")]);
        let s3_name = format!("s3-{tag}-{}.devbox-corp.test", std::process::id());
        let (ca, ca_key) = make_ca(dir.path(), "s3-ca", "/O=Devbox Corp/CN=Devbox Corp S3 CA");
        let (cert, key) = (dir.path().join("s3.pem"), dir.path().join("s3.key"));
        let csr = dir.path().join("s3.csr");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={s3_name}"),
            "-keyout",
            key.to_str().expect("utf-8"),
            "-out",
            csr.to_str().expect("utf-8"),
        ]);
        let ext = dir.path().join("s3.ext");
        std::fs::write(&ext, format!("subjectAltName=DNS:{s3_name}\nextendedKeyUsage=serverAuth\n")).expect("write");
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().expect("utf-8"),
            "-CA",
            ca.to_str().expect("utf-8"),
            "-CAkey",
            ca_key.to_str().expect("utf-8"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.to_str().expect("utf-8"),
            "-out",
            cert.to_str().expect("utf-8"),
        ]);
        let mut corp = Corp {
            s3_name,
            s3_port: free_port(),
            s3_ca: ca,
            children: Vec::new(),
            hosts_line: String::new(),
            rules: Vec::new(),
            dir,
        };
        let tls = format!(
            "socat OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={cert},key={key} TCP:127.0.0.1:{backend_port}",
            port = corp.s3_port,
            cert = cert.display(),
            key = key.display()
        );
        corp.start("s3-tls", &tls);
        let port = corp.s3_port;
        wait_until(format!("S3 over TLS on 127.0.0.1:{port}"), Duration::from_secs(10), || super::port_open(port));
        corp.add_hosts_line();
        corp
    }

    /// `https://s3-….devbox-corp.test:PORT`: what devbox.toml names.
    pub fn endpoint(&self) -> String {
        format!("https://{}:{}", self.s3_name, self.s3_port)
    }

    /// Starts `command` (a shell line) under a watcher that ends it when this test process ends.
    fn start(&mut self, name: &str, command: &str) {
        let pid_file = self.dir.path().join(format!("{name}.pid"));
        let log = self.dir.path().join(format!("{name}.out"));
        let child =
            super::watched(format!("{command} >{} 2>&1", log.display()), Some(&pid_file)).expect("start a watcher");
        self.children.push((child, pid_file));
    }

    fn add_hosts_line(&mut self) {
        let _one = HOSTS.lock().unwrap_or_else(|p| p.into_inner());
        self.hosts_line = format!("127.0.0.1 {} # devbox network test {}", self.s3_name, std::process::id());
        let hosts = std::fs::read_to_string("/etc/hosts").expect("read /etc/hosts");
        // Written in place: /etc/hosts may be a bind mount, which a rename would not reach.
        std::fs::write("/etc/hosts", format!("{}\n{}\n", hosts.trim_end(), self.hosts_line)).expect("write /etc/hosts");
    }

    /// Closes the direct path to S3: only the proxies' user reaches its port from now on.
    pub fn close_direct_path(&mut self) {
        let port = self.s3_port.to_string();
        let rule: Vec<String> = [
            "OUTPUT",
            "-o",
            "lo",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-m",
            "owner",
            "!",
            "--uid-owner",
            PROXY_USER,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]
        .map(String::from)
        .to_vec();
        let mut insert = vec!["-w".to_string(), "-I".to_string()];
        insert.extend(rule.iter().cloned());
        let args: Vec<&str> = insert.iter().map(String::as_str).collect();
        run("iptables", &args);
        self.rules.push(rule);
        // Proven closed: this process (root) is refused now.
        assert!(!super::port_open(self.s3_port), "the direct path to S3 is still open");
    }

    /// tinyproxy on `port` (all addresses: the registry container reaches it through the host
    /// gateway), asking for `auth` (user, password) when given.
    pub fn tinyproxy(&mut self, port: u16, auth: Option<(&str, &str)>) -> Proxy {
        let log = self.dir.path().join(format!("tinyproxy-{port}.log"));
        std::fs::write(&log, "").expect("create the log");
        run("chown", &[PROXY_USER, log.to_str().expect("utf-8")]);
        let auth = auth.map(|(user, password)| format!("BasicAuth {user} {password}\n")).unwrap_or_default();
        let config = format!(
            "User {PROXY_USER}\nGroup nogroup\nPort {port}\nTimeout 60\nLogFile \"{}\"\nLogLevel Connect\n\
             MaxClients 50\nDisableViaHeader Yes\n{auth}",
            log.display()
        );
        let file = self.dir.path().join(format!("tinyproxy-{port}.conf"));
        std::fs::write(&file, config).expect("write tinyproxy's config");
        self.start(&format!("tinyproxy-{port}"), &format!("tinyproxy -d -c {}", file.display()));
        wait_until(format!("tinyproxy on port {port}"), Duration::from_secs(10), || super::port_open(port));
        Proxy { port, log, ca: None }
    }

    /// mitmproxy on `port`, re-signing every HTTPS connection with a CA of this test's own, and
    /// trusting S3's private CA upstream (as a company's inspecting proxy trusts its own servers).
    pub fn mitmproxy(&mut self, port: u16) -> Proxy {
        let conf = self.dir.path().join(format!("mitm-{port}"));
        std::fs::create_dir_all(&conf).expect("mkdir");
        let (cert, key) = make_ca(&conf, "inspect-ca", "/O=Devbox Corp/CN=Devbox Corp Inspection CA");
        // mitmproxy wants its CA's key and certificate in one file.
        let both = format!(
            "{}{}",
            std::fs::read_to_string(&key).expect("read the key"),
            std::fs::read_to_string(&cert).expect("read the cert")
        );
        std::fs::write(conf.join("mitmproxy-ca.pem"), both).expect("write mitmproxy's CA");
        run("chown", &["-R", PROXY_USER, conf.to_str().expect("utf-8")]);
        let command = format!(
            "setpriv --reuid={PROXY_USER} --regid=nogroup --clear-groups -- {MITMDUMP} --listen-port {port} \
             --set confdir={conf} --set ssl_verify_upstream_trusted_ca={s3_ca} --set flow_detail=1",
            conf = conf.display(),
            s3_ca = self.s3_ca.display()
        );
        self.start(&format!("mitm-{port}"), &command);
        wait_until(format!("mitmproxy on port {port}"), Duration::from_secs(60), || super::port_open(port));
        Proxy { port, log: self.dir.path().join(format!("mitm-{port}.out")), ca: Some(cert) }
    }
}

impl Drop for Corp {
    fn drop(&mut self) {
        for rule in &self.rules {
            let mut delete = vec!["-w".to_string(), "-D".to_string()];
            delete.extend(rule.iter().cloned());
            let _ = Command::new("iptables").args(&delete).output();
        }
        for (child, pid_file) in &mut self.children {
            if let Ok(pid) = std::fs::read_to_string(&*pid_file) {
                let _ = Command::new("kill").arg(pid.trim()).output();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.hosts_line.is_empty() {
            let _one = HOSTS.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
                let kept: Vec<&str> = hosts.lines().filter(|line| *line != self.hosts_line).collect();
                let _ = std::fs::write("/etc/hosts", format!("{}\n", kept.join("\n")));
            }
        }
    }
}
