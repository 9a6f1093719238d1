//! `emberctl functions load FILE | list | delete NAME | flush`: the cluster's function
//! libraries (what `FUNCTION LOAD` / `FCALL` use), kept by the control plane.

use std::io::Read;

use serde::Serialize;

use crate::args::FunctionsCommand;
use crate::client::CliError;
use crate::commands::Ctx;
use crate::output;

pub async fn run(ctx: &Ctx, a: FunctionsCommand) -> Result<(), CliError> {
    let mut admin = ctx.connect().await?;
    let change = match a {
        FunctionsCommand::Load(l) => {
            let code = read_code(&l.file)?;
            admin.load_library(code, l.replace).await?
        }
        FunctionsCommand::Delete(d) => admin.delete_library(d.name).await?,
        FunctionsCommand::Flush => admin.flush_libraries().await?,
        FunctionsCommand::List(l) => {
            let view = admin.state().await?;
            let libs = &view.snapshot.topology.libraries;
            if ctx.json {
                let docs: Vec<LibraryDoc> = libs
                    .values()
                    .map(|lib| LibraryDoc {
                        name: &lib.name,
                        functions: &lib.functions,
                        code: l.code.then_some(lib.code.as_str()),
                    })
                    .collect();
                output::emit_json(&docs);
            } else {
                output::emit(&render(libs, l.code));
            }
            return Ok(());
        }
    };
    ctx.report_change(&change, None);
    Ok(())
}

#[derive(Serialize)]
struct LibraryDoc<'a> {
    name: &'a str,
    functions: &'a [ember_core::functions::FunctionInfo],
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
}

fn read_code(path: &std::path::Path) -> Result<String, CliError> {
    let mut code = String::new();
    let read = if path == std::path::Path::new("-") {
        std::io::stdin().read_to_string(&mut code)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut code))
    };
    read.map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(code)
}

fn render(libs: &ember_core::functions::Libraries, with_code: bool) -> String {
    if libs.is_empty() {
        return "no function libraries (load one with `emberctl functions load FILE`)".into();
    }
    let mut out = String::new();
    for lib in libs.values() {
        out.push_str(&format!("{}\n", lib.name));
        for f in &lib.functions {
            let flags = match f.flags.is_empty() {
                true => String::new(),
                false => format!(" [{}]", f.flags.join(", ")),
            };
            let desc = f
                .description
                .as_deref()
                .map(|d| format!("  {d}"))
                .unwrap_or_default();
            out.push_str(&format!("  {}{flags}{desc}\n", f.name));
        }
        if with_code {
            for line in lib.code.lines() {
                out.push_str(&format!("    | {line}\n"));
            }
        }
    }
    out.trim_end().to_string()
}
