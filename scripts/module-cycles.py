#!/usr/bin/env python3
"""Import cycles between the modules of a crate: reads every `crate::` and
`super::` path outside tests in SRC (default recorder/src), prints each
cycle, exits 1 if there is one. `-v` prints the whole graph.

    scripts/module-cycles.py [SRC] [-v]
"""
import os, re, sys
args = [a for a in sys.argv[1:] if not a.startswith('-')]
root = args[0] if args else os.path.join(os.path.dirname(__file__), '..', 'recorder', 'src')
mods = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p = os.path.join(d, f)
        rel = os.path.relpath(p, root)[:-3].split(os.sep)
        if rel[-1] in ('mod', 'lib', 'main'): rel = rel[:-1]
        mods['::'.join(rel)] = p
def resolve(path):
    parts = path.split('::')
    while parts:
        m = '::'.join(parts)
        if m in mods: return m
        parts = parts[:-1]
    return None
edges = {m: set() for m in mods}
for m, p in mods.items():
    src = open(p).read()
    src = src.split('#[cfg(test)]')[0]
    src = re.sub(r'//.*', '', src)
    base = m.split('::') if m else []
    # expand `use x::{a, b::{c}}` crudely: collect crate:: and super:: prefixed paths
    for mt in re.finditer(r'\b(crate|super)((?:::\w+)+)(?:::\{([^;]*?)\})?', src):
        kind, path, group = mt.group(1), mt.group(2)[2:], mt.group(3)
        # `super` of module a::b is a, whether b is a file or a folder.
        prefix = path if kind == 'crate' else '::'.join(base[:-1] + [path])
        cands = [prefix]
        if group:
            for g in re.split(r',', group):
                g = g.strip().split(' as ')[0].replace('{','').replace('}','').strip()
                if g and g != 'self': cands.append(prefix + '::' + g)
        for c in cands:
            r = resolve(c)
            if r is not None and r != m and not m.startswith(r + '::') :
                edges[m].add(r)
# cycles via Tarjan
idx = {}; low = {}; st = []; on = set(); out = []; n = [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: out.append(comp)
for v in mods:
    if v not in idx: sc(v)
for c in out: print('cycle:', ' '.join(sorted(c)))
if '-v' in sys.argv:
    for m in sorted(edges): print(m or '(lib)', '->', ', '.join(sorted(edges[m])))
print(len(out), 'cycles among', len(mods), 'modules')
sys.exit(1 if out else 0)
