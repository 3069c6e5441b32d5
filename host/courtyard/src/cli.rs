//! The admin's command line: the daily work of a community's admin (and the operator)
//! over the HTTP API, like any other client. Answers are printed as JSON (tables for the
//! lists people read); an error prints the API's message and exits non-zero.

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Where the host is, and whose token to send.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The host's URL.
    #[arg(
        long,
        global = true,
        env = "COURTYARD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// The token to send (an admin's, a device's, the operator's); read from
    /// `--token-file` when not given.
    #[arg(long, global = true, env = "COURTYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The file with the token (the operator's, on the host's machine).
    #[arg(
        long,
        global = true,
        env = "COURTYARD_TOKEN_FILE",
        default_value = "courtyard-data/operator.token"
    )]
    pub token_file: PathBuf,
}

/// A client of the API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client for `connection`.
    pub fn new(connection: &Connection) -> Result<Self> {
        let token = match &connection.token {
            Some(token) => token.clone(),
            None => std::fs::read_to_string(&connection.token_file)
                .with_context(|| {
                    format!(
                        "no --token (or COURTYARD_TOKEN), and cannot read {}",
                        connection.token_file.display()
                    )
                })?
                .trim()
                .to_owned(),
        };
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(120))
                .build()?,
            base: connection.url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends a request; returns the JSON answer of a 2xx, or fails with the API's error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("(no message)");
            let mut report = format!("{status}: {message}");
            if let Some(details) = body["error"]["details"].as_array() {
                for d in details {
                    report.push_str(&format!("\n  {}", d.as_str().unwrap_or_default()));
                }
            }
            bail!(report);
        }
        Ok(body)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }
}

/// `courtyard community …`
#[derive(Debug, clap::Subcommand)]
pub enum CommunityCommand {
    /// List the communities (the operator: all; an admin: their own) with their plugins.
    List,
    /// Show one community.
    Show {
        /// The community id.
        community: String,
    },
    /// Create a community (the operator).
    Create {
        /// Its id: lowercase letters, digits and '-'.
        id: String,
        /// Its name.
        name: String,
    },
}

/// `courtyard plugin enable|disable|list|publish`
#[derive(Debug, clap::Subcommand)]
pub enum PluginAdmin {
    /// The plugins a community runs, with their config and grants.
    List {
        #[command(flatten)]
        connection: Connection,
        /// The community.
        community: String,
    },
    /// Enable a plugin in a community, or change its config, version pin or grants.
    Enable {
        #[command(flatten)]
        connection: Connection,
        /// The community.
        community: String,
        /// The plugin.
        plugin: String,
        /// A JSON or YAML file with the config (top-level keys over the defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Pin this version.
        #[arg(long)]
        version: Option<String>,
        /// Grant only these capabilities (repeat the flag); all that the manifest
        /// requests when not given.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// With `--grant http`: an origin the plugin may send requests to
        /// (`https://library.example`); repeat the flag for more.
        #[arg(long = "allow-host")]
        allowed_hosts: Vec<String>,
    },
    /// Disable a plugin in a community (its state is kept).
    Disable {
        #[command(flatten)]
        connection: Connection,
        /// The community.
        community: String,
        /// The plugin.
        plugin: String,
    },
    /// Publish a built plugin: a directory with `manifest.json` and `plugin.wasm`.
    Publish {
        #[command(flatten)]
        connection: Connection,
        /// The plugin's directory.
        dir: PathBuf,
    },
}

/// `courtyard workflow …`
#[derive(Debug, clap::Subcommand)]
pub enum WorkflowCommand {
    /// The community's workflows and whether each is on.
    List {
        /// The community.
        community: String,
    },
    /// Apply (create or replace) a workflow document, YAML or JSON.
    Apply {
        /// The community.
        community: String,
        /// The document.
        file: PathBuf,
        /// The workflow's name; the file's name without its extension when not given.
        #[arg(long)]
        name: Option<String>,
    },
    /// Switch a workflow on.
    Enable {
        /// The community.
        community: String,
        /// The workflow.
        name: String,
    },
    /// Switch a workflow off (started runs finish).
    Disable {
        /// The community.
        community: String,
        /// The workflow.
        name: String,
    },
    /// Start a run by hand.
    Run {
        /// The community.
        community: String,
        /// The workflow.
        name: String,
        /// The run's input (JSON).
        #[arg(long, default_value = "{}")]
        input: String,
    },
}

/// `courtyard event post …`
#[derive(Debug, clap::Subcommand)]
pub enum EventCommand {
    /// Post an event as a device would.
    Post {
        /// The community.
        community: String,
        /// The event's kind (`camera.object-thrown`).
        kind: String,
        /// Its payload (a JSON object).
        #[arg(long, default_value = "{}")]
        payload: String,
        /// An idempotency id.
        #[arg(long)]
        id: Option<String>,
    },
}

/// `courtyard runs …`
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// The community.
    pub community: String,
    /// One run, with its steps.
    pub run: Option<String>,
    /// Only this workflow's runs.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only runs in this state (running, waiting, succeeded, failed).
    #[arg(long)]
    pub status: Option<String>,
    /// How many (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

/// `courtyard alarms …`
#[derive(Debug, clap::Args)]
pub struct AlarmsArgs {
    /// The community.
    pub community: String,
    /// Only alarms in these states (comma-separated: raised, escalated, acknowledged,
    /// cleared).
    #[arg(long)]
    pub state: Option<String>,
    /// Only alarms of these severities (comma-separated: info, warning, critical).
    #[arg(long)]
    pub severity: Option<String>,
    /// How many.
    #[arg(long)]
    pub limit: Option<u32>,
}

/// `courtyard audit …`
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// One community's changes (its admin may read them); all of them (the operator) when
    /// not given.
    pub community: Option<String>,
    /// How many, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

/// `courtyard token …`
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token of a community: a device's (admins), or an admin's (the operator).
    Create {
        /// The community.
        community: String,
        /// `device` or `admin`.
        #[arg(long, default_value = "device")]
        role: String,
        /// What it is for ("gate 3 camera box").
        #[arg(long, default_value = "")]
        label: String,
    },
    /// The community's tokens (never their secrets).
    List {
        /// The community.
        community: String,
    },
    /// Revoke one of the community's tokens.
    Revoke {
        /// The community.
        community: String,
        /// The token's id (`tok_…`).
        id: String,
    },
}

fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn json_arg(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not JSON: {text}"))
}

/// Reads a JSON or YAML file into a JSON value.
fn read_document(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    } else {
        serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))
    }
}

/// `courtyard community …`
pub async fn community(connection: &Connection, command: CommunityCommand) -> Result<()> {
    let client = Client::new(connection)?;
    match command {
        CommunityCommand::List => {
            let body = client.get("/v1/communities").await?;
            let list = body["communities"].as_array().cloned().unwrap_or_default();
            println!("{:<20} {:<28} plugins", "id", "name");
            for c in &list {
                let plugins: Vec<&str> = c["plugins"]
                    .as_array()
                    .map(|p| p.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                println!(
                    "{:<20} {:<28} {}",
                    c["id"].as_str().unwrap_or_default(),
                    c["name"].as_str().unwrap_or_default(),
                    plugins.join(", ")
                );
            }
            println!("{} communities", list.len());
        }
        CommunityCommand::Show { community } => {
            print(&client.get(&format!("/v1/communities/{community}")).await?);
        }
        CommunityCommand::Create { id, name } => {
            print(
                &client
                    .post("/v1/communities", &json!({ "id": id, "name": name }))
                    .await?,
            );
        }
    }
    Ok(())
}

/// `courtyard plugin enable|disable|list|publish`
pub async fn plugin(command: PluginAdmin) -> Result<()> {
    let connection = match &command {
        PluginAdmin::List { connection, .. }
        | PluginAdmin::Enable { connection, .. }
        | PluginAdmin::Disable { connection, .. }
        | PluginAdmin::Publish { connection, .. } => connection,
    };
    let client = Client::new(connection)?;
    match command {
        PluginAdmin::List { community, .. } => {
            print(
                &client
                    .get(&format!("/v1/communities/{community}/plugins"))
                    .await?,
            );
        }
        PluginAdmin::Enable {
            community,
            plugin,
            config,
            version,
            grants,
            allowed_hosts,
            ..
        } => {
            let mut body = serde_json::Map::new();
            if let Some(path) = config {
                body.insert("config".into(), read_document(&path)?);
            }
            if let Some(version) = version {
                body.insert("version".into(), version.into());
            }
            if !grants.is_empty() {
                body.insert("grants".into(), grants.into());
            }
            if !allowed_hosts.is_empty() {
                body.insert("allowed_hosts".into(), allowed_hosts.into());
            }
            let answer = client
                .send(
                    client
                        .http
                        .put(client.url(&format!("/v1/communities/{community}/plugins/{plugin}")))
                        .json(&body),
                )
                .await?;
            print(&answer);
        }
        PluginAdmin::Disable {
            community, plugin, ..
        } => {
            client
                .send(
                    client.http.delete(
                        client.url(&format!("/v1/communities/{community}/plugins/{plugin}")),
                    ),
                )
                .await?;
            println!("disabled {plugin} in {community}");
        }
        PluginAdmin::Publish { dir, .. } => {
            let manifest = std::fs::read(dir.join("manifest.json"))
                .with_context(|| format!("cannot read {}/manifest.json", dir.display()))?;
            let component = std::fs::read(dir.join("plugin.wasm")).with_context(|| {
                format!(
                    "cannot read {}/plugin.wasm; build the plugin first",
                    dir.display()
                )
            })?;
            let form = reqwest::multipart::Form::new()
                .part(
                    "manifest",
                    reqwest::multipart::Part::bytes(manifest).file_name("manifest.json"),
                )
                .part(
                    "component",
                    reqwest::multipart::Part::bytes(component).file_name("plugin.wasm"),
                );
            print(
                &client
                    .send(client.http.post(client.url("/v1/plugins")).multipart(form))
                    .await?,
            );
        }
    }
    Ok(())
}

/// `courtyard workflow …`
pub async fn workflow(connection: &Connection, command: WorkflowCommand) -> Result<()> {
    let client = Client::new(connection)?;
    let answer = match command {
        WorkflowCommand::List { community } => {
            client
                .get(&format!("/v1/communities/{community}/workflows"))
                .await?
        }
        WorkflowCommand::Apply {
            community,
            file,
            name,
        } => {
            let name = match name {
                Some(name) => name,
                None => file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .context("the file has no name; pass --name")?,
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let content_type = if file.extension().is_some_and(|e| e == "json") {
                "application/json"
            } else {
                "application/yaml"
            };
            client
                .send(
                    client
                        .http
                        .put(client.url(&format!("/v1/communities/{community}/workflows/{name}")))
                        .header("content-type", content_type)
                        .body(text),
                )
                .await?
        }
        WorkflowCommand::Enable { community, name } => {
            client
                .post(
                    &format!("/v1/communities/{community}/workflows/{name}/enable"),
                    &json!({}),
                )
                .await?
        }
        WorkflowCommand::Disable { community, name } => {
            client
                .post(
                    &format!("/v1/communities/{community}/workflows/{name}/disable"),
                    &json!({}),
                )
                .await?
        }
        WorkflowCommand::Run {
            community,
            name,
            input,
        } => {
            client
                .post(
                    &format!("/v1/communities/{community}/workflows/{name}/runs"),
                    &json_arg(&input, "--input")?,
                )
                .await?
        }
    };
    print(&answer);
    Ok(())
}

/// `courtyard event post …`
pub async fn event(connection: &Connection, command: EventCommand) -> Result<()> {
    let client = Client::new(connection)?;
    let EventCommand::Post {
        community,
        kind,
        payload,
        id,
    } = command;
    let mut body = json!({ "kind": kind, "payload": json_arg(&payload, "--payload")? });
    if let Some(id) = id {
        body["id"] = id.into();
    }
    print(
        &client
            .post(&format!("/v1/communities/{community}/events"), &body)
            .await?,
    );
    Ok(())
}

/// `courtyard runs …`
pub async fn runs(connection: &Connection, args: RunsArgs) -> Result<()> {
    let client = Client::new(connection)?;
    if let Some(run) = &args.run {
        print(
            &client
                .get(&format!("/v1/communities/{}/runs/{run}", args.community))
                .await?,
        );
        return Ok(());
    }
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(w) = args.workflow {
        query.push(("workflow", w));
    }
    if let Some(s) = args.status {
        query.push(("status", s));
    }
    let body = client
        .send(
            client
                .http
                .get(client.url(&format!("/v1/communities/{}/runs", args.community)))
                .query(&query),
        )
        .await?;
    let runs = body["runs"].as_array().cloned().unwrap_or_default();
    println!("{:<28} {:<24} {:<10} step", "run", "workflow", "status");
    for r in &runs {
        println!(
            "{:<28} {:<24} {:<10} {}",
            r["id"].as_str().unwrap_or_default(),
            r["workflow"].as_str().unwrap_or_default(),
            r["status"].as_str().unwrap_or_default(),
            r["steps"]
                .as_array()
                .and_then(|s| s.last())
                .and_then(|s| s["id"].as_str())
                .unwrap_or("-"),
        );
    }
    Ok(())
}

/// `courtyard token …`
pub async fn token(connection: &Connection, command: TokenCommand) -> Result<()> {
    let client = Client::new(connection)?;
    match command {
        TokenCommand::Create {
            community,
            role,
            label,
        } => {
            let answer = client
                .post(
                    &format!("/v1/communities/{community}/tokens"),
                    &json!({ "role": role, "label": label }),
                )
                .await?;
            print(&answer);
            eprintln!("the token is shown this once; only its hash is kept");
        }
        TokenCommand::List { community } => {
            print(
                &client
                    .get(&format!("/v1/communities/{community}/tokens"))
                    .await?,
            );
        }
        TokenCommand::Revoke { community, id } => {
            client
                .send(
                    client
                        .http
                        .delete(client.url(&format!("/v1/communities/{community}/tokens/{id}"))),
                )
                .await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// `courtyard alarms …`
pub async fn alarms(connection: &Connection, args: AlarmsArgs) -> Result<()> {
    let client = Client::new(connection)?;
    let mut query = Vec::new();
    if let Some(s) = args.state {
        query.push(("state", s));
    }
    if let Some(s) = args.severity {
        query.push(("severity", s));
    }
    if let Some(l) = args.limit {
        query.push(("limit", l.to_string()));
    }
    print(
        &client
            .send(
                client
                    .http
                    .get(client.url(&format!("/v1/communities/{}/alarms", args.community)))
                    .query(&query),
            )
            .await?,
    );
    Ok(())
}

/// `courtyard audit …`
pub async fn audit(connection: &Connection, args: AuditArgs) -> Result<()> {
    let client = Client::new(connection)?;
    let path = match &args.community {
        Some(c) => format!("/v1/communities/{c}/audit"),
        None => "/v1/audit".to_owned(),
    };
    let body = client
        .send(
            client
                .http
                .get(client.url(&path))
                .query(&[("limit", args.limit.to_string())]),
        )
        .await?;
    println!(
        "{:<6} {:<15} {:<22} {:<20} who",
        "seq", "when (UTC)", "action", "target"
    );
    for e in body["entries"].as_array().cloned().unwrap_or_default() {
        let when = e["at_ms"]
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        println!(
            "{:<6} {:<15} {:<22} {:<20} {} ({})",
            e["seq"],
            when,
            e["action"].as_str().unwrap_or_default(),
            e["target"].as_str().unwrap_or_default(),
            e["actor"]["token"].as_str().unwrap_or_default(),
            e["actor"]["role"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}
