#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The manual pages denvrd(8) and denvr.toml(5): lint, in step with the code, installed.

  check-man.py lint PAGE...
      mandoc -T lint -W warning and groff -ww -z -mandoc find nothing to say.
  check-man.py sync DENVRD LIST_CONFIG_KEYS DENVRD_8 DENVR_TOML_5 LOCAL_API_C EXAMPLE
      every long option `denvrd --help` prints is in the OPTIONS of denvrd(8), with the same
      short option, and every option there is in --help; every environment variable --help
      names is under ENVIRONMENT; every /_denvrd/ endpoint local_api.c serves is under LOCAL
      API; every section and key of the loader's table (LIST_CONFIG_KEYS prints them) has its
      .Ss and .It Ic in denvr.toml(5), and the page documents no other.  Sections whose keys
      are free-form ([cache], [rights], [tokens]: paths, subjects, names) have no keys in the
      table and are checked by their .Ss alone; the table header of every section the example
      configuration EXAMPLE shows must be one the loader lists, so a section left out of the
      list cannot slip past the page.  Every "Default:" denvr.toml(5) gives is the loader's:
      what `denvrd --check-config` prints for an empty configuration (a literal number,
      .Ql or .Cm value); the few defaults that are a sentence (DESCRIBED_DEFAULTS) are named.
  check-man.py install MESON BUILDDIR MANDIR
      `meson install --destdir` into a temporary directory, then `man -w denvrd` and
      `man -w denvr.toml` with MANPATH pointing there find the installed pages.
Standard library only; exit status 0 when all is well, 1 with a list of what is not.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

problems = []

# Defaults denvr.toml(5) describes in words, as they depend on the environment or another key.
DESCRIBED_DEFAULTS = {("defaults", "vpcid"), ("daemon", "socket")}


def problem(msg):
    problems.append(msg)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


# ---------------------------------------------------------------------------------------------
def lint(pages):
    if not pages:
        problem("no pages to lint")
    for page in pages:
        r = run(["mandoc", "-T", "lint", "-W", "warning", page])
        if r.returncode != 0 or r.stdout or r.stderr:
            problem("mandoc -T lint -W warning %s (exit %d):\n%s%s" % (page, r.returncode, r.stdout, r.stderr))
        r = run(["groff", "-ww", "-z", "-mandoc", page])
        if r.returncode != 0 or r.stdout or r.stderr:
            problem("groff -ww -z -mandoc %s (exit %d):\n%s%s" % (page, r.returncode, r.stdout, r.stderr))


# ---------------------------------------------------------------------------------------------
def man_sections(text):
    """{".Sh title": [lines]} of an mdoc page."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith(".Sh "):
            cur = line[4:].strip()
            out[cur] = []
        elif cur:
            out[cur].append(line)
    return out


def item_words(lines, macro):
    """For each `.It MACRO a , b ...` line: the words after MACRO up to the next macro."""
    items = []
    for line in lines:
        if line.startswith(".It %s " % macro):
            words = []
            for w in line.split()[2:]:
                if w == ",":
                    continue
                if re.fullmatch(r"[A-Z][a-z]", w):  # the next macro (Ar, Ns, Li...)
                    break
                words.append(w)
            items.append(words)
    return items


def help_options(help_text):
    longs = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", help_text))
    shorts = dict((lo, sh) for sh, lo in re.findall(r"(?<![\w-])-(\w), --([a-z][a-z0-9-]*)", help_text))
    return longs, shorts


def man_options(lines):
    longs, shorts = set(), {}
    for line in lines:
        if not line.startswith(".It Fl "):
            continue
        flags = re.findall(r"\bFl (-?[\w-]+)", line)
        short = [f for f in flags if not f.startswith("-")]
        for f in flags:
            if f.startswith("-"):
                longs.add(f[1:])
                if short:
                    shorts[f[1:]] = short[0]
    return longs, shorts


def sync(denvrd, list_keys, page8, page5, local_api_c, example):
    r = run([denvrd, "--help"])
    if r.returncode != 0:
        problem("denvrd --help exited %d" % r.returncode)
    help_text = r.stdout
    man8 = man_sections(Path(page8).read_text())
    for title in ("OPTIONS", "ENVIRONMENT", "LOCAL API", "SIGNALS", "FILES", "EXIT STATUS"):
        if title not in man8:
            problem("%s has no section %s" % (page8, title))

    h_long, h_short = help_options(help_text)
    m_long, m_short = man_options(man8.get("OPTIONS", []))
    if not h_long:
        problem("no long options found in denvrd --help")
    for o in sorted(h_long - m_long):
        problem("--%s is in denvrd --help but not in the OPTIONS of %s" % (o, page8))
    for o in sorted(m_long - h_long):
        problem("--%s is in the OPTIONS of %s but not in denvrd --help" % (o, page8))
    for o in sorted(h_long & m_long):
        if h_short.get(o) != m_short.get(o):
            problem("--%s: short option %s in --help, %s in %s" % (o, h_short.get(o), m_short.get(o), page8))

    env_doc = {w for words in item_words(man8.get("ENVIRONMENT", []), "Ev") for w in words}
    for v in sorted(set(re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", help_text)) - env_doc):
        problem("environment variable %s is in denvrd --help but not in the ENVIRONMENT of %s"
                % (v, page8))

    served = set(re.findall(r'strcmp\(name, "([a-z_-]+)"\)', Path(local_api_c).read_text()))
    if not served:
        problem("no endpoints found in %s" % local_api_c)
    documented = {w for words in item_words(man8.get("LOCAL API", []), "Pa") for w in words}
    for e in sorted(served):
        if "/_denvrd/" + e not in documented:
            problem("endpoint /_denvrd/%s is not in the LOCAL API of %s" % (e, page8))
    for e in sorted(w for w in documented if w.startswith("/_denvrd/")):
        if e[len("/_denvrd/"):] not in served:
            problem("%s documents %s, which denvrd does not serve" % (page8, e))

    r = run([list_keys])
    if r.returncode != 0:
        problem("%s exited %d" % (list_keys, r.returncode))
    known_sections = {ln[1:-1] for ln in r.stdout.splitlines() if ln.startswith("[")}
    known_keys = {tuple(ln.split()) for ln in r.stdout.splitlines() if not ln.startswith("[")}
    if not known_sections or not known_keys:
        problem("%s listed no sections or keys" % list_keys)
    doc_sections, doc_keys, section = set(), set(), None
    for line in Path(page5).read_text().splitlines():
        m = re.fullmatch(r"\.Ss \[([a-z_]+)\]", line)
        if m:
            section = m.group(1)
            doc_sections.add(section)
        elif line.startswith(".Sh "):
            section = None
        elif section and line.startswith(".It Ic "):
            doc_keys.add((section, line.split()[2]))
    shown = set(re.findall(r"^\[([a-z_]+)\]", Path(example).read_text(), re.M))
    if not shown:
        problem("%s shows no sections" % example)
    for s in sorted(shown - known_sections):
        problem("%s shows a section [%s] that %s does not list" % (example, s, list_keys))
    for s in sorted(known_sections - doc_sections):
        problem("section [%s] has no .Ss [%s] in %s" % (s, s, page5))
    for s in sorted(doc_sections - known_sections):
        problem("%s documents a section [%s] the loader does not know" % (page5, s))
    for s, k in sorted(known_keys - doc_keys):
        problem("key %s in [%s] is not documented in %s" % (k, s, page5))
    for s, k in sorted(doc_keys - known_keys):
        problem("%s documents %s in [%s], which the loader does not know" % (page5, k, s))
    check_defaults(denvrd, page5)
    free_form = known_sections - {s for s, _ in known_keys}
    print("checked %d options, %d sections (%d with free-form keys), %d keys, %d endpoints"
          % (len(h_long), len(known_sections), len(free_form), len(known_keys), len(served)))


# ---------------------------------------------------------------------------------------------
def page_defaults(text):
    """{(section, key): the words after "Default:" up to the item's end} of denvr.toml(5)."""
    out, section, key, words = {}, None, None, None

    def close():
        if key and words is not None:
            out[(section, key)] = words

    for line in text.splitlines():
        m = re.fullmatch(r"\.Ss \[([a-z_]+)\]", line)
        if m or line.startswith((".Sh ", ".It ", ".El")):
            close()
            key, words = None, None
            if m:
                section = m.group(1)
            elif line.startswith(".Sh "):
                section = None
            if section and line.startswith(".It Ic "):
                key = line.split()[2]
            continue
        if words is not None:
            words.append(line)
        elif key and line.startswith("Default:"):
            words = [line[len("Default:"):]]
    close()
    return out


def documented_default(lines):
    """The literal a "Default:" gives: "60" of "Default: 60.", "info" of ".Cm info .", the
    string of ".Ql \\(dq0600\\(dq ."; None when it is a sentence."""
    first = lines[0].strip()
    m = re.match(r"(-?\d+)\b", first)
    if m:
        return m.group(1)
    if first or len(lines) < 2:
        return None
    m = re.fullmatch(r"\.(?:Ql|Cm) (\S+)(?: [.;,])?", lines[1].strip())
    if not m:
        return None
    return m.group(1).replace("\\(dq", "")


def as_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list) and len(v) == 1:
        return as_text(v[0])
    return str(v)


def check_defaults(denvrd, page5):
    with tempfile.TemporaryDirectory(prefix="denvrd-defaults-") as tmp:
        empty = os.path.join(tmp, "denvr.toml")
        Path(empty).write_text("")
        # Only a credential, so that the configuration is complete; nothing else from outside.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp,
               "DENVR_APIKEY": "check-man"}
        r = run([denvrd, "--check-config", "--config", empty], env=env)
    if r.returncode != 0:
        problem("denvrd --check-config of an empty configuration exited %d: %s" % (r.returncode, r.stderr))
        return
    actual = json.loads(r.stdout)
    documented = page_defaults(Path(page5).read_text())
    if not documented:
        problem("%s documents no defaults" % page5)
    for (section, key), lines in sorted(documented.items()):
        want = documented_default(lines)
        if (section, key) in DESCRIBED_DEFAULTS:
            continue
        if want is None:
            problem("%s: the default of %s in [%s] is neither a number nor a .Ql or .Cm value: %r"
                    % (page5, key, section, " ".join(lines)[:120]))
            continue
        if key not in actual.get(section, {}):
            problem("%s gives a default for %s in [%s], which --check-config does not show"
                    % (page5, key, section))
            continue
        got = as_text(actual[section][key])
        if got != want:
            problem("%s says %s in [%s] defaults to %s; the loader's default is %s"
                    % (page5, key, section, want, got))
    print("checked %d documented defaults against --check-config" % len(documented))


# ---------------------------------------------------------------------------------------------
def install(meson, builddir, mandir):
    dest = Path(tempfile.mkdtemp(prefix="denvrd-man-"))
    try:
        r = run([meson, "install", "-C", builddir, "--no-rebuild", "--destdir", str(dest)])
        if r.returncode != 0:
            problem("meson install --destdir failed (exit %d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
            return
        manpath = dest / mandir.lstrip("/")
        env = dict(os.environ, MANPATH=str(manpath))
        env.pop("MANOPT", None)
        for name, want in (("denvrd", "man8/denvrd.8"), ("denvr.toml", "man5/denvr.toml.5")):
            r = run(["man", "-w", name], env=env)
            found = r.stdout.strip()
            if r.returncode != 0 or found != str(manpath / want):
                problem("man -w %s with MANPATH=%s: exit %d, %r (expected %s)%s"
                        % (name, manpath, r.returncode, found, manpath / want, r.stderr))
                continue
            r = run(["man", "-P", "cat", name], env=dict(env, MANWIDTH="80"))
            if r.returncode != 0 or "SYNOPSIS" not in r.stdout:
                problem("man %s did not render (exit %d): %s" % (name, r.returncode, r.stderr))
            print("man -w %s: %s" % (name, found))
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def main(argv):
    modes = {"lint": (lint, None), "sync": (sync, 6), "install": (install, 3)}
    if len(argv) < 2 or argv[1] not in modes:
        print(__doc__, file=sys.stderr)
        return 2
    fn, nargs = modes[argv[1]]
    args = argv[2:]
    if nargs is not None and len(args) != nargs:
        print(__doc__, file=sys.stderr)
        return 2
    if nargs is None:
        fn(args)
    else:
        fn(*args)
    for p in problems:
        print("check-man: %s" % p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
