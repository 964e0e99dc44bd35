//! The README's walk-through is `examples/walkthrough.sh` word for word (CI runs the script
//! against a live server), and the README points only at files in this repository.

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_readme_walkthrough_is_the_script_ci_runs() {
    let readme = read("README.md");
    let start = readme.find("<!-- walkthrough:start -->\n```sh\n").expect("walk-through start marker");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + "```sh\n".len()..];
    let block = &block[..block.find("```\n<!-- walkthrough:end -->").expect("walk-through end marker")];
    let script = read("examples/walkthrough.sh");
    let body = script.split_once("set -euo pipefail\n").expect("the script's preamble").1;
    assert_eq!(block, body, "README.md and examples/walkthrough.sh differ");
}

#[test]
fn the_readme_points_only_inside_the_repository() {
    for file in ["README.md", "SECURITY.md", "docs/reference.md"] {
        assert!(!read(file).contains("../shared"), "{file} points outside the repository");
    }
}
