"""The cross-half figures of run.sh. A phrase of reason.rs's tables that decides
only on messages of one half of the corpus, and is not part of the vocabulary
Sisimai publishes for its reasons, is taken for a phrase written on that half:
the figure "A -> B" is half B's agreement with those of half B left out (the
tables as if written on half A and the public vocabulary only), "B -> A" the
other way round. Pessimistic where a phrase of common words happens to occur in
one half only; the in-corpus figures of corpus_report are optimistic the other
way, since the tables were written on the whole corpus."""
import collections, glob, os, re, subprocess, sys

tree, corpus, sisimai = sys.argv[1:4]
# The instrumented examples (run.sh: a release build in the tree, or the smoke mode's debug one).
bins = sys.argv[4] if len(sys.argv) > 4 else os.path.join(tree, "target/release/examples")
vocab = set()
for f in glob.glob(os.path.join(sisimai, "reason", "why-*.go")):
    vocab.update(m.group(1).lower() for m in re.finditer(r'"([^"\n]{3,})"', open(f).read()))
# The smoke mode runs without go-sisimai (ALLOW_EMPTY_VOCABULARY=1, said by run.sh).
if not vocab and os.environ.get("ALLOW_EMPTY_VOCABULARY") != "1":
    sys.exit(f"no reason/why-*.go under {sisimai}: not a go-sisimai checkout")
src = open(os.path.join(tree, "classify/src/reason.rs")).read()
tables = src[src.index("const DECISIVE"):src.index("/// One automaton over every phrase")]
tables = re.sub(r"//[^\n]*", "", tables)
phrases = [m.group(1).replace("\\u{2019}", "\u2019") for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', tables)]
if not phrases:
    sys.exit("bench: FAILED: no phrase read from reason.rs's tables (DECISIVE ... 'One automaton over every phrase')")
published = {i for i, p in enumerate(phrases) if any(p in v for v in vocab)}
# The provider table (`PROVIDERS`, read before the phrase tables) is not left out
# by this measurement: say so when it holds words Sisimai does not publish, whose
# effect on the halves would then have to be judged by hand.
if "const PROVIDERS" in src:
    providers = src[src.index("const PROVIDERS"):src.index("fn by_provider")]
    providers = re.sub(r"//[^\n]*", "", providers)
    unpublished = [p for p in re.findall(r'"((?:[^"\\]|\\.)*)"', providers)
                   if not p.startswith(".") and not any(p in v for v in vocab)]
    if unpublished:
        print(f"warning: PROVIDERS holds words Sisimai's reason/why-*.go do not, not left out here: {unpublished}")


def half(file):
    # The same split as classify/tests/measure/mod.rs (Half::of).
    name = os.path.basename(file)
    for prefix in ("lhost-", "rhost-"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    c = name[:1].lower()
    return "A" if c.isalpha() and c < "n" else "B"


emails = os.path.join(corpus, "emails/maildir/bsd")
halves = collections.defaultdict(set)
for name in sorted(os.listdir(emails)):
    run = subprocess.run([os.path.join(bins, "classify_files"), os.path.join(emails, name)],
                         capture_output=True, text=True)
    for line in run.stderr.splitlines():
        if line.startswith("PHRASE\t"):
            halves[int(line.split("\t")[1])].add(half(name))
if not halves:
    sys.exit("bench: FAILED: classify_files reported no deciding phrase (PHRASE lines) on any file")
own = {h: sorted(i for i, hs in halves.items() if hs == {h} and i not in published) for h in "AB"}


def agreement(drop, h):
    env = dict(os.environ, ABLATE=",".join(map(str, drop)))
    out = subprocess.run([os.path.join(bins, "corpus_report"), corpus],
                         capture_output=True, text=True, env=env).stdout
    m = re.search(rf"reason agreement, half {h}\s+(\S+ \(\d+/\d+)", out)
    if m is None:
        sys.exit(f"bench: FAILED: corpus_report printed no reason agreement for half {h}")
    return m.group(1) + ")"


print(f"{len(phrases)} phrases, {len(published)} in Sisimai's published vocabulary")
print(f"in the corpus:   A {agreement([], 'A')}, B {agreement([], 'B')}")
print(f"A -> B: half B {agreement(own['B'], 'B')} without {len(own['B'])} phrases of half B's own: {[phrases[i] for i in own['B']]}")
print(f"B -> A: half A {agreement(own['A'], 'A')} without {len(own['A'])} phrases of half A's own: {[phrases[i] for i in own['A']]}")
