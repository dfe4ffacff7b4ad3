"""Instruments a copy of classify/src/reason.rs for run.sh: `by_phrase` prints the
index of each phrase that decides (PHRASE<TAB>n on stderr) and leaves out the
phrases whose indices $ABLATE lists. Never part of the classifier itself."""
import sys

path = sys.argv[1]
src = open(path).read()
anchor = """    let best = t
        .phrases
        .find_overlapping(text)
        .map(|m| t.rank[m.pattern().as_usize()])
        .min()?;"""
probe = """
    for m in t.phrases.find_overlapping(text) {
        if t.rank[m.pattern().as_usize()] == best {
            eprintln!("PHRASE\\t{}", m.pattern().as_usize());
        }
    }
    if let Ok(drop) = std::env::var("ABLATE") {
        let dropped: Vec<usize> = drop.split(',').filter_map(|x| x.parse().ok()).collect();
        let best = t
            .phrases
            .find_overlapping(text)
            .filter(|m| !dropped.contains(&m.pattern().as_usize()))
            .map(|m| t.rank[m.pattern().as_usize()])
            .min()?;
        return Some((t.reasons[best], best < DECISIVE.len()));
    }"""
if anchor not in src:
    sys.exit(f"{path}: by_phrase has changed; update instrument.py")
open(path, "w").write(src.replace(anchor, anchor + probe, 1))
