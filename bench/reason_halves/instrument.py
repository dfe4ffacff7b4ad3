"""Instruments a copy of classify/src/reason.rs for run.sh: `by_phrase` prints the
index of each phrase that decides (PHRASE<TAB>n on stderr) and leaves out the
phrases whose indices $ABLATE lists. Never part of the classifier itself.
Knows both forms of `by_phrase`: a hit's phrase index as `m.pattern` (the crate's own
automaton, since the issue 23 fifth round) and as `m.pattern().as_usize()` (aho-corasick,
before), so that run.sh can measure older revisions too."""
import sys

path = sys.argv[1]
src = open(path).read()
for pattern in ("m.pattern", "m.pattern().as_usize()"):
    anchor = f"""    let best = t
        .phrases
        .find_overlapping(text)
        .map(|m| t.rank[{pattern}])
        .min()?;"""
    if anchor in src:
        break
else:
    sys.exit(f"{path}: by_phrase has changed; update instrument.py")
probe = f"""
    for m in t.phrases.find_overlapping(text) {{
        if t.rank[{pattern}] == best {{
            eprintln!("PHRASE\\t{{}}", {pattern});
        }}
    }}
    if let Ok(drop) = std::env::var("ABLATE") {{
        let dropped: Vec<usize> = drop.split(',').filter_map(|x| x.parse().ok()).collect();
        let best = t
            .phrases
            .find_overlapping(text)
            .filter(|m| !dropped.contains(&{pattern}))
            .map(|m| t.rank[{pattern}])
            .min()?;
        return Some((t.reasons[best], best < DECISIVE.len()));
    }}"""
open(path, "w").write(src.replace(anchor, anchor + probe, 1))
