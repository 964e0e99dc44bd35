//! The README's code blocks that CI runs are the files it runs, word for word: the
//! walk-through is `examples/walkthrough.sh`, the web-app example is
//! `examples/interop/web_app.mjs` (the browser test signs in to it). And the README points
//! only at files in this repository.

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The fenced block between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
fn marked_block(text: &str, name: &str) -> String {
    let start = format!("<!-- {name}:start -->\n```");
    let block = &text[text.find(&start).unwrap_or_else(|| panic!("{name} start marker")) + start.len()..];
    let block = &block[block.find('\n').unwrap() + 1..];
    let end = format!("```\n<!-- {name}:end -->");
    block[..block.find(&end).unwrap_or_else(|| panic!("{name} end marker"))].to_owned()
}

#[test]
fn the_readme_walkthrough_is_the_script_ci_runs() {
    let script = read("examples/walkthrough.sh");
    let body = script.split_once("set -euo pipefail\n").expect("the script's preamble").1;
    assert_eq!(
        marked_block(&read("README.md"), "walkthrough"),
        body,
        "README.md and examples/walkthrough.sh differ"
    );
}

#[test]
fn the_readme_web_app_is_the_one_the_browser_signs_in_to() {
    assert_eq!(
        marked_block(&read("README.md"), "web-app"),
        read("examples/interop/web_app.mjs"),
        "README.md and examples/interop/web_app.mjs differ"
    );
}

#[test]
fn the_readme_points_only_inside_the_repository() {
    for file in ["README.md", "SECURITY.md", "docs/reference.md"] {
        assert!(!read(file).contains("../shared"), "{file} points outside the repository");
    }
}
