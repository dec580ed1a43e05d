//! Both emulators together, with a config for `start` pointing at them: used
//! by the integration tests, the schemathesis run in CI, and the hidden
//! `emulators` verb (the start of `demo`).

use std::path::{Path, PathBuf};

use super::discord::{DiscordEmulator, EmulatorConfig};
use super::teleport::{EmulatorOptions, TeleportEmulator};

/// A running Teleport emulator (mutual TLS) and Discord emulator.
#[derive(Debug)]
pub struct Sandbox {
    /// The Teleport Auth emulator.
    pub teleport: TeleportEmulator,
    /// The Discord emulator.
    pub discord: DiscordEmulator,
    /// Channel IDs created in the Discord emulator: `dev`, `ops`, `fallback`.
    pub channels: [String; 3],
    dir: PathBuf,
}

impl Sandbox {
    /// Starts both emulators on `127.0.0.1:0`, writing credentials into `dir`.
    pub async fn start(dir: &Path, discord: EmulatorConfig) -> std::io::Result<Self> {
        let teleport = TeleportEmulator::start(EmulatorOptions::new(dir))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let discord = DiscordEmulator::start(discord).await?;
        let channels = [
            discord.add_channel("dev"),
            discord.add_channel("ops"),
            discord.add_channel("fallback"),
        ];
        Ok(Self {
            teleport,
            discord,
            channels,
            dir: dir.to_owned(),
        })
    }

    /// A complete config for `start` against the emulators (the interactions
    /// endpoint on, with the emulated application's public key); `extra` is
    /// appended (it may add sections such as `[http]` or `[log]`).
    pub fn config(&self, extra: &str) -> String {
        let [dev, ops, fallback] = &self.channels;
        format!(
            "[teleport]\naddr = \"{}\"\nconnect_via = \"auth\"\nidentity = \"{}\"\n\n[discord]\ntoken = \"{}\"\napi_url = \"{}\"\npublic_key = \"{}\"\n\n[role_to_recipients]\n\"dev\" = [\"{dev}\", \"{ops}\"]\n\"*\" = \"{fallback}\"\n{extra}\n",
            self.teleport.addr(),
            self.teleport.paths().identity.display(),
            self.discord.token(),
            self.discord.api_url(),
            self.discord.public_key_hex(),
        )
    }

    /// The emulators and channel IDs, for a caller that shares them (as
    /// `demo` does with its page and the control API).
    pub fn into_parts(self) -> (TeleportEmulator, DiscordEmulator, [String; 3]) {
        (self.teleport, self.discord, self.channels)
    }

    /// Writes [`Self::config`] to `teleport-discord.toml` in the sandbox directory.
    pub fn write_config(&self, extra: &str) -> std::io::Result<PathBuf> {
        let path = self.dir.join("teleport-discord.toml");
        std::fs::write(&path, self.config(extra))?;
        Ok(path)
    }
}

/// Starts a sandbox in `dir`, writes the config, prints its path, and runs
/// until SIGINT or SIGTERM.
pub async fn run_until_signal(dir: &Path, extra: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let sandbox = Sandbox::start(dir, EmulatorConfig::default()).await?;
    let path = sandbox.write_config(extra)?;
    println!("config: {}", path.display());
    println!("teleport: {}", sandbox.teleport.addr());
    println!("discord: {}", sandbox.discord.api_url());
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r?,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
