//! Generates Order's client of Inventory's catalog from Inventory's contract,
//! `services/inventory/openapi.yaml`, with progenitor, into
//! `$OUT_DIR/inventory_client.rs` (included by `src/inventory.rs`). Every
//! build reads the contract afresh: an edit of it changes the client, and a
//! contract the generator cannot turn into a client fails the build.
//!
//! One normalisation before generating, because progenitor requires every
//! response counted as a success to have one body type, and it counts
//! `default` as a possible success: the contract's `default` response is its
//! errors (problem+json), so it is given to the generator as the `4XX` and
//! `5XX` ranges (those the contract does not list one by one). The generated
//! client then answers any undocumented status as an error, never as an item.

use std::error::Error;
use std::path::PathBuf;

use openapiv3::{OpenAPI, ReferenceOr, StatusCode};
use progenitor::{GenerationSettings, Generator, InterfaceStyle, TagStyle};

const CONTRACT: &str = "../inventory/openapi.yaml";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo::rerun-if-changed={CONTRACT}");
    let text = std::fs::read_to_string(CONTRACT).map_err(|e| format!("read {CONTRACT}: {e}"))?;
    let mut spec: OpenAPI = serde_yaml::from_str(&text).map_err(|e| format!("{CONTRACT} is no OpenAPI 3.0 document: {e}"))?;
    default_is_an_error(&mut spec);

    let mut settings = GenerationSettings::new();
    settings
        .with_interface(InterfaceStyle::Builder)
        .with_tag(TagStyle::Merged)
        // Every request carries the current (client) span's trace context, signed.
        .with_pre_hook_async(syn::parse_str("crate::inventory::propagate")?);
    let tokens = Generator::new(&settings).generate_tokens(&spec).map_err(|e| format!("generate a client from {CONTRACT}: {e}"))?;
    let file: syn::File = syn::parse2(tokens)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("inventory_client.rs");
    std::fs::write(&out, prettyplease::unparse(&file))?;
    Ok(())
}

/// Moves each operation's `default` response to the `4XX` and `5XX` ranges
/// the operation does not already list.
fn default_is_an_error(spec: &mut OpenAPI) {
    for (_, item) in spec.paths.paths.iter_mut() {
        let ReferenceOr::Item(item) = item else { continue };
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in ops.into_iter().flatten() {
            let Some(default) = op.responses.default.take() else { continue };
            for range in [4, 5] {
                op.responses.responses.entry(StatusCode::Range(range)).or_insert_with(|| default.clone());
            }
        }
    }
}
