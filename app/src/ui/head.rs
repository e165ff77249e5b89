//! The page's asset tags: the stylesheet, the module preloads and the
//! script that loads the WASM and hydrates. What leptos' `HashedStylesheet`
//! and `HydrationScripts` write, but with the hashed file names read once per
//! process instead of on every page (both find the binary's path and read
//! `hash.txt` each time they render, about 4 % of a page's CPU). Only this
//! render's CSP nonce changes from page to page.

use std::sync::OnceLock;

use leptos::{nonce::use_nonce, prelude::*};

/// The `/pkg` URLs of this build's assets.
#[derive(Debug, PartialEq, Eq)]
struct Assets {
    css: String,
    js: String,
    wasm: String,
}

impl Assets {
    /// From the options and the hashes `cargo leptos` wrote (`js: …`,
    /// `wasm: …`, `css: …` lines); without hashes, the plain names.
    fn new(options: &LeptosOptions, hashes: Option<&str>) -> Self {
        let hash_of = |kind: &str| {
            hashes?.lines().find_map(|line| {
                let (file, hash) = line.trim().split_once(':')?;
                (file == kind).then(|| format!(".{}", hash.trim()))
            })
        };
        let name = &options.output_name;
        let pkg = format!("/{}", options.site_pkg_dir);
        // Not built by `cargo leptos` (nor hashed): wasm-bindgen's own name.
        let bg = if !options.hash_files && option_env!("LEPTOS_OUTPUT_NAME").is_none() {
            "_bg"
        } else {
            ""
        };
        Self {
            css: format!("{pkg}/{name}{}.css", hash_of("css").unwrap_or_default()),
            js: format!("{pkg}/{name}{}.js", hash_of("js").unwrap_or_default()),
            wasm: format!(
                "{pkg}/{name}{}{bg}.wasm",
                hash_of("wasm").unwrap_or_default()
            ),
        }
    }

    /// Read once: `hash.txt` lies beside the binary, as leptos expects it.
    fn get(options: &LeptosOptions) -> &'static Self {
        static ASSETS: OnceLock<Assets> = OnceLock::new();
        ASSETS.get_or_init(|| {
            let hashes = options
                .hash_files
                .then(|| {
                    let exe = std::env::current_exe().ok()?;
                    std::fs::read_to_string(exe.parent()?.join(options.hash_file.as_ref())).ok()
                })
                .flatten();
            Assets::new(options, hashes.as_deref())
        })
    }

    /// Imports the JS glue, instantiates the WASM and hydrates the page.
    fn loader(&self) -> String {
        format!(
            "import({:?}).then(m=>m.default({{module_or_path:{:?}}}).then(()=>m.hydrate()))",
            self.js, self.wasm
        )
    }
}

/// For the shell's `<head>`, server side only.
#[component]
pub fn AssetTags(options: LeptosOptions) -> impl IntoView {
    let assets = Assets::get(&options);
    let nonce = use_nonce();
    view! {
        <link rel="stylesheet" id="leptos" href=assets.css.as_str() />
        <link rel="modulepreload" href=assets.js.as_str() crossorigin="" />
        <link
            rel="preload"
            href=assets.wasm.as_str()
            r#as="fetch"
            r#type="application/wasm"
            crossorigin=""
        />
        <script type="module" nonce=nonce>
            {assets.loader()}
        </script>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(hash_files: bool) -> LeptosOptions {
        LeptosOptions::builder()
            .output_name("chat")
            .hash_files(hash_files)
            .build()
    }

    #[test]
    fn hashed_names_come_from_the_hash_file() {
        let hashes = "js: Ab1\nwasm: Cd2\ncss: Ef3\nmanifest: Gh4\n";
        let assets = Assets::new(&options(true), Some(hashes));
        assert_eq!(
            assets,
            Assets {
                css: "/pkg/chat.Ef3.css".into(),
                js: "/pkg/chat.Ab1.js".into(),
                wasm: "/pkg/chat.Cd2.wasm".into(),
            }
        );
        assert_eq!(
            assets.loader(),
            r#"import("/pkg/chat.Ab1.js").then(m=>m.default({module_or_path:"/pkg/chat.Cd2.wasm"}).then(()=>m.hydrate()))"#
        );
    }

    #[test]
    fn plain_names_without_a_hash_file() {
        let assets = Assets::new(&options(false), None);
        assert_eq!(assets.css, "/pkg/chat.css");
        assert_eq!(assets.js, "/pkg/chat.js");
        assert!(assets.wasm.starts_with("/pkg/chat") && assets.wasm.ends_with(".wasm"));
    }
}
