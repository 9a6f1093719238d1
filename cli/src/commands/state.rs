//! `export-state` and `import-state`: backups of the control plane's state, and the
//! explicit restore that recovers a control plane whose state is behind the cluster's.

use std::io::{Read, Write};

use crate::args::{ExportArgs, ImportArgs};
use crate::client::CliError;
use crate::commands::Ctx;

pub async fn export(ctx: &Ctx, a: ExportArgs) -> Result<(), CliError> {
    let json = ctx.connect().await?.export_state().await?;
    match a.output {
        None => std::io::stdout()
            .write_all(&json)
            .and_then(|()| std::io::stdout().write_all(b"\n"))
            .map_err(|e| CliError::Usage(format!("cannot write to stdout: {e}"))),
        Some(path) => {
            let tmp = path.with_extension("tmp");
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&json)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)
            };
            write().map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
        }
    }
}

pub async fn import(ctx: &Ctx, a: ImportArgs) -> Result<(), CliError> {
    let json = match a.file {
        None => Vec::new(),
        Some(path) if path.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
            buf
        }
        Some(path) => std::fs::read(&path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?,
    };
    let change = ctx.connect().await?.import_state(json).await?;
    ctx.report_change(&change, None);
    Ok(())
}
