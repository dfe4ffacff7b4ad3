//! The image recipe without a container engine: the Dockerfile, scripts/image-rootfs.sh
//! (which assembles each image's root filesystem) and scripts/images.sh (the offline build)
//! must agree on the images, their binaries and their user, or one of the two build paths
//! produces a different image from the other. `bash scripts/images.sh` exercises the real
//! build.

use std::collections::BTreeMap;
use std::process::Command;

use bounceops_tests::{read, repo_root};

const DOCKERFILE: &str = "Dockerfile";
const ROOTFS_SCRIPT: &str = "scripts/image-rootfs.sh";
const IMAGES_SCRIPT: &str = "scripts/images.sh";

/// The stage both images are built on, which holds what they share (their user).
const RUNTIME_STAGE: &str = "runtime";

/// A named stage of the Dockerfile, with the instructions that matter here.
#[derive(Debug, Default)]
struct Stage {
    base: String,
    copies: Vec<String>,
    users: Vec<String>,
    entrypoint: Option<String>,
}

/// The Dockerfile's `FROM <base> AS <name>` stages, by name.
fn stages(dockerfile: &str) -> BTreeMap<String, Stage> {
    let mut stages = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in dockerfile.lines().map(str::trim) {
        let Some(instr) = line.split_whitespace().next() else {
            continue;
        };
        let rest = line[instr.len()..].trim().to_owned();
        if instr == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let [base, "AS", name] = words.as_slice() else {
                panic!("every stage is named (FROM <base> AS <name>): {line}");
            };
            let stage = Stage {
                base: (*base).to_owned(),
                ..Stage::default()
            };
            assert!(
                stages.insert((*name).to_owned(), stage).is_none(),
                "stage {name} defined twice"
            );
            current = Some((*name).to_owned());
            continue;
        }
        let Some(stage) = current.as_ref().and_then(|n| stages.get_mut(n)) else {
            continue;
        };
        match instr {
            "COPY" => stage.copies.push(rest),
            "USER" => stage.users.push(rest),
            "ENTRYPOINT" => stage.entrypoint = Some(rest),
            _ => {}
        }
    }
    stages
}

/// The images: the stages built on the runtime stage.
fn final_stages(dockerfile: &str) -> BTreeMap<String, Stage> {
    stages(dockerfile)
        .into_iter()
        .filter(|(_, stage)| stage.base == RUNTIME_STAGE)
        .collect()
}

/// `IMAGES=( "name:bin bin" ... )` of image-rootfs.sh: image name to its binaries.
fn rootfs_images(script: &str) -> BTreeMap<String, Vec<String>> {
    let start = script
        .find("\nIMAGES=(")
        .expect("image-rootfs.sh defines IMAGES=(");
    let body = &script[start + "\nIMAGES=(".len()..];
    let body = &body[..body.find("\n)").expect("IMAGES=( is closed")];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let spec = l.trim_matches('"');
            let (name, bins) = spec
                .split_once(':')
                .unwrap_or_else(|| panic!("IMAGES entry {l} is not \"name:binaries\""));
            (
                name.to_owned(),
                bins.split_whitespace().map(str::to_owned).collect(),
            )
        })
        .collect()
}

/// The value of a `NAME=value` line of a script.
fn assignment<'a>(script: &'a str, name: &str) -> &'a str {
    script
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= line"))
}

/// `[[bin]]` names of a crate's Cargo.toml.
fn cargo_bins(manifest: &str) -> Vec<String> {
    let toml = read(manifest);
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(v) = line.strip_prefix("name = ") {
            bins.push(v.trim_matches('"').to_owned());
        }
    }
    bins
}

#[test]
fn dockerfile_and_rootfs_script_name_the_same_images_and_binaries() {
    let stages = final_stages(&read(DOCKERFILE));
    let images = rootfs_images(&read(ROOTFS_SCRIPT));
    assert_eq!(
        stages.keys().collect::<Vec<_>>(),
        images.keys().collect::<Vec<_>>(),
        "the Dockerfile's final stages and image-rootfs.sh's IMAGES differ"
    );
    let mut workspace_bins = cargo_bins("worker/Cargo.toml");
    workspace_bins.extend(cargo_bins("operator/Cargo.toml"));
    for (name, bins) in &images {
        let stage = &stages[name];
        assert_eq!(
            bins.first(),
            Some(name),
            "{name}: the first binary is the entrypoint and carries the image's name"
        );
        assert_eq!(
            stage.entrypoint.as_deref(),
            Some(format!("[\"/usr/local/bin/{name}\"]").as_str()),
            "{name}: ENTRYPOINT is not the binary image-rootfs.sh installs"
        );
        assert_eq!(
            stage.copies,
            [format!("--from=rootfs /out/{name}/ /")],
            "{name}: the stage must copy exactly the rootfs image-rootfs.sh assembles for it"
        );
        for bin in bins {
            assert!(
                workspace_bins.contains(bin),
                "{name}: {bin} is not a [[bin]] of worker/ or operator/ ({workspace_bins:?})"
            );
        }
    }
}

#[test]
fn images_run_as_the_user_the_rootfs_and_the_chart_define() {
    let script = read(ROOTFS_SCRIPT);
    let uid: u32 = assignment(&script, "IMAGE_UID")
        .parse()
        .expect("IMAGE_UID is a number");
    assert_ne!(uid, 0, "the images must not run as root");
    let user = assignment(&script, "IMAGE_USER");
    assert!(
        script.contains("$IMAGE_USER:x:$IMAGE_UID:$IMAGE_UID:"),
        "image-rootfs.sh must give {user} ({uid}) a passwd entry"
    );
    let stages = stages(&read(DOCKERFILE));
    let runtime = stages
        .get(RUNTIME_STAGE)
        .unwrap_or_else(|| panic!("no {RUNTIME_STAGE} stage"));
    assert_eq!(runtime.base, "scratch", "the images have no base image");
    // Numeric: the kubelet can only enforce runAsNonRoot on a numeric USER.
    assert_eq!(
        runtime.users,
        [format!("{uid}:{uid}")],
        "the {RUNTIME_STAGE} stage's USER must be the uid image-rootfs.sh creates"
    );
    for (name, stage) in &stages {
        assert!(
            stage.base != RUNTIME_STAGE || stage.users.is_empty(),
            "{name} must keep the {RUNTIME_STAGE} stage's USER"
        );
    }
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read("charts/bounceops/values.yaml")).expect("values.yaml");
    for key in ["runAsUser", "runAsGroup"] {
        assert_eq!(
            values["podSecurityContext"][key].as_u64(),
            Some(u64::from(uid)),
            "the chart's podSecurityContext.{key} is not the images' user"
        );
    }
}

#[test]
fn both_build_paths_run_the_same_rootfs_script() {
    let dockerfile = read(DOCKERFILE);
    let images_sh = read(IMAGES_SCRIPT);
    let runs = |text: &str| text.contains(&format!("bash {ROOTFS_SCRIPT} "));
    assert!(
        runs(&dockerfile),
        "the Dockerfile's build stage must run {ROOTFS_SCRIPT}"
    );
    assert!(runs(&images_sh), "{IMAGES_SCRIPT} must run {ROOTFS_SCRIPT}");
    assert!(
        dockerfile.contains("\nFROM ${ROOTFS_FROM} AS rootfs\n"),
        "the final stages' rootfs must be selectable (ROOTFS_FROM), which is how {IMAGES_SCRIPT} feeds them"
    );
    assert!(
        images_sh.contains("ROOTFS_FROM=$rootfs_image"),
        "{IMAGES_SCRIPT} must build the Dockerfile's final stages from its own rootfs image"
    );
    let rootfs = rootfs_images(&read(ROOTFS_SCRIPT));
    let listed = assignment(&images_sh, "all_images");
    let listed: Vec<&str> = listed
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split_whitespace()
        .collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        rootfs.keys().map(String::as_str).collect::<Vec<_>>(),
        "{IMAGES_SCRIPT} builds other images than image-rootfs.sh assembles"
    );
    // The Tiltfile's image() builds each through the Dockerfile target (docker) or
    // IMAGES=<target> of this script (containerd).
    let tiltfile = read("Tiltfile");
    for image in listed {
        assert!(
            tiltfile.contains(&format!("_IMAGE, '{image}'")),
            "the Tiltfile does not build the Dockerfile target {image}"
        );
    }
    assert!(tiltfile.contains("target=target") && tiltfile.contains("IMAGES=%s"));
}

#[test]
fn image_scripts_parse() {
    for script in [ROOTFS_SCRIPT, IMAGES_SCRIPT] {
        let out = Command::new("bash")
            .arg("-n")
            .arg(repo_root().join(script))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "bash -n {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
